//! The listener's own metrics (not a worker's): events written, notify commands, its
//! backlog and bounds, its endpoint's connections, its process. An explicit registry, as
//! the worker's; the counters of events start from the state file's totals, so they do not
//! fall back to zero when it restarts.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::events::KINDS;
use super::state::State;
use crate::http::Stats;
use crate::metrics::{ProcessMetrics, HTTP_EVENTS};

/// The `outcome` labels of notify commands.
const OUTCOMES: &[&str] = &["ok", "failed", "timed_out", "spawn_error", "dropped"];

pub struct Own {
    pub registry: Registry,
    process: ProcessMetrics,
    events: IntCounterVec,
    commands: IntCounterVec,
    pub workers: IntGauge,
    pub unhealthy: IntGauge,
    pub backlog: IntGauge,
    pub open_batches: IntGauge,
    pub commands_queued: IntGauge,
    http: IntCounterVec,
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Own {
    pub fn new(state: &State) -> prometheus::Result<Own> {
        let r = Registry::new();
        let gauge = |name: &str, help: &str| reg(&r, IntGauge::new(name, help)?);
        let counter = |name: &str, help: &str, label: &str| {
            reg(&r, IntCounterVec::new(Opts::new(name, help), &[label])?)
        };
        let own = Own {
            process: ProcessMetrics::register_unlabelled(&r)?,
            events: counter(
                "watcher_listener_events_total",
                "Events written to triggers/orchestrator/, by event, since the listener's state was created.",
                "event",
            )?,
            commands: counter(
                "watcher_listener_notify_commands_total",
                "ORCHESTRATOR_NOTIFY_COMMAND runs by outcome: ok, failed, timed_out, spawn_error, dropped (queue full).",
                "outcome",
            )?,
            workers: gauge("watcher_listener_workers", "Workers the listener follows.")?,
            unhealthy: gauge("watcher_listener_unhealthy_workers", "Workers announced unhealthy and not recovered.")?,
            backlog: gauge("watcher_listener_backlog_results", "Results found and not taken yet.")?,
            open_batches: gauge("watcher_listener_open_batches", "Batches counted and not complete.")?,
            commands_queued: gauge(
                "watcher_listener_notify_commands_queued",
                "Notify commands waiting for a free slot.",
            )?,
            http: counter(
                "watcher_listener_http_connections_total",
                "Connections to the listener's endpoint: accepted, answered, rejected (400/431), evicted (to make room), timed_out.",
                "event",
            )?,
            registry: r,
        };
        for kind in KINDS {
            let saved = state.events_written.get(*kind).copied().unwrap_or(0);
            own.events.get_metric_with_label_values(&[kind])?.inc_by(saved);
        }
        for outcome in OUTCOMES {
            own.commands.get_metric_with_label_values(&[outcome])?;
        }
        for event in HTTP_EVENTS {
            own.http.get_metric_with_label_values(&[event])?;
        }
        let info = IntGaugeVec::new(
            Opts::new("watcher_listener_build_info", "Always 1; the listener's version in a label."),
            &["version"],
        )?;
        reg(&own.registry, info)?.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(own)
    }

    pub fn event_written(&self, kind: &str) {
        self.events.with_label_values(&[kind]).inc();
    }

    pub fn command_ended(&self, outcome: &str) {
        self.commands.with_label_values(&[outcome]).inc();
    }

    /// Brings the dropped-commands counter up to `total`.
    pub fn set_dropped(&self, total: u64) {
        let c = self.commands.with_label_values(&["dropped"]);
        c.inc_by(total.saturating_sub(c.get()));
    }

    pub fn set_http(&self, st: &Stats) {
        for (event, total) in [
            ("accepted", st.accepted),
            ("answered", st.responses),
            ("rejected", st.rejected),
            ("evicted", st.evicted),
            ("timed_out", st.timed_out),
        ] {
            let c = self.http.with_label_values(&[event]);
            c.inc_by(total.saturating_sub(c.get()));
        }
    }

    /// The registry's families, with the process figures read now.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.process.refresh();
        self.registry.gather()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::command::CommandOutcome;
    use crate::runner::Exit;

    #[test]
    fn every_outcome_has_its_series_and_events_resume_from_the_state() {
        for o in [
            CommandOutcome::Ok,
            CommandOutcome::Failed(Exit::Code(1)),
            CommandOutcome::TimedOut,
            CommandOutcome::SpawnError(String::new()),
        ] {
            assert!(OUTCOMES.contains(&o.label()), "{o:?}");
        }
        let mut state = State::default();
        state.events_written.insert("task_completed".into(), 41);
        let own = Own::new(&state).expect("metrics");
        own.event_written("task_completed");
        assert_eq!(own.events.with_label_values(&["task_completed"]).get(), 42);
    }
}
