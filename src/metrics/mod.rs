//! The Prometheus metrics of a worker: an explicit registry per daemon (no global one, so
//! tests and daemons never share state), the families of the old design under their exact
//! names, and what an operator needs beyond them.
//!
//! Every family is labelled `worker`, so the listener can serve many workers' families side
//! by side. No label ever names a task. Counters move when an outcome is durable (the daemon
//! calls [`WorkerMetrics::record`] from its commit), so a scrape never counts what a crash
//! would lose. Gauges are set from the loop's state at scrape time.

mod families;
mod process;

use std::time::Duration;

use prometheus::{Counter, Encoder, Histogram, IntCounter, Registry, TextEncoder};

use crate::agent::reason::Reason;
use crate::agent::AgentReport;
pub use families::{
    Families, DURATION_BUCKETS, HTTP_EVENTS, LATENCY_BUCKETS, REASONS, SESSION_KINDS, STATUSES, WORKER_ONLY,
};
pub use process::ProcessMetrics;

/// The text exposition format served on /metrics.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a task's attempt ended, as far as the counters are concerned.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    Completed,
    /// Given up: a failed result and a dead letter (or a dead letter only for a file
    /// without a usable id).
    Failed {
        reason: Reason,
    },
    /// A failed attempt that will be retried.
    Retried {
        reason: Reason,
    },
    /// A run not charged to its task (a rate limit, an outage of the agent's service).
    Uncharged {
        reason: Reason,
    },
    /// Cancelled (`watcherctl cancel`): a result of its own, no dead letter.
    Cancelled,
}

/// What one outcome adds to the metrics once it is durable.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub end: End,
    /// The agent run, when one ran.
    pub run: Option<Run>,
}

/// One agent run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub duration: Duration,
    pub report: Option<AgentReport>,
    /// How it used its task's agent session ([`SESSION_KINDS`]: `new` or `resumed`); `None`:
    /// sessions are off.
    pub session: Option<&'static str>,
}

/// The loop's state, read at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub queue_size: usize,
    pub active: usize,
    pub waiting_retry: usize,
    pub max_concurrent: usize,
    /// 0 closed, 1 open, 2 half-open.
    pub breaker: i64,
    pub oldest_queued_age: f64,
    pub heartbeat_age: f64,
    pub healthy: bool,
    /// Heartbeat fresh and not stopping: `watcher_worker_up`.
    pub up: bool,
    /// The breaker is open or half-open for a credential fault.
    pub credential_fault: bool,
}

/// One worker's metrics.
pub struct WorkerMetrics {
    registry: Registry,
    families: Families,
    process: ProcessMetrics,
    worker: String,
    // The children moved for every task, looked up once.
    completed: IntCounter,
    duration: Histogram,
    latency: Histogram,
    cost: Counter,
    /// input, output, cache_creation_input, cache_read_input.
    tokens: [IntCounter; 4],
}

impl WorkerMetrics {
    pub fn new(worker: &str) -> prometheus::Result<WorkerMetrics> {
        let registry = Registry::new();
        let families = Families::register(&registry)?;
        families.init(worker)?;
        let process = ProcessMetrics::register(&registry, worker)?;
        families.build_info.get_metric_with_label_values(&[worker, env!("CARGO_PKG_VERSION")])?.set(1);
        let token = |kind: &str| families.agent_tokens.get_metric_with_label_values(&[worker, kind]);
        let tokens =
            [token("input")?, token("output")?, token("cache_creation_input")?, token("cache_read_input")?];
        Ok(WorkerMetrics {
            cost: families.agent_cost.get_metric_with_label_values(&[worker])?,
            tokens,
            completed: families.processed.get_metric_with_label_values(&[worker, "completed"])?,
            duration: families.duration.get_metric_with_label_values(&[worker])?,
            latency: families.detection_latency.get_metric_with_label_values(&[worker])?,
            registry,
            families,
            process,
            worker: worker.to_string(),
        })
    }

    /// An outcome became durable.
    pub fn record(&self, r: &Recorded) {
        let f = &self.families;
        let w = self.worker.as_str();
        match &r.end {
            End::Completed => self.completed.inc(),
            End::Failed { reason } => {
                f.processed.with_label_values(&[w, "failed"]).inc();
                f.failed.with_label_values(&[w, reason.as_str()]).inc();
                f.dead_letters.with_label_values(&[w, reason.as_str()]).inc();
            }
            End::Retried { reason } => f.retries.with_label_values(&[w, reason.as_str()]).inc(),
            End::Uncharged { reason } => f.uncharged.with_label_values(&[w, reason.as_str()]).inc(),
            End::Cancelled => f.processed.with_label_values(&[w, "cancelled"]).inc(),
        }
        let Some(run) = &r.run else {
            return;
        };
        if let Some(kind) = run.session {
            self.session_run(kind);
        }
        self.duration.observe(run.duration.as_secs_f64());
        if let Some(rep) = &run.report {
            if let Some(cost) = rep.total_cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
                self.cost.inc_by(cost);
            }
            if let Some(turns) = rep.num_turns.filter(|n| *n > 0) {
                f.agent_turns.with_label_values(&[w]).inc_by(turns);
            }
            let counts = [
                rep.input_tokens,
                rep.output_tokens,
                rep.cache_creation_input_tokens,
                rep.cache_read_input_tokens,
            ];
            for (counter, n) in self.tokens.iter().zip(counts) {
                if n > 0 {
                    counter.inc_by(n);
                }
            }
        }
    }

    /// An agent run of kind `kind` ([`SESSION_KINDS`]) of a task's session.
    pub fn session_run(&self, kind: &str) {
        self.families.session_runs.with_label_values(&[&self.worker, kind]).inc();
    }

    /// The worker is paused by a rate limit (`rate_limit`) or its spend cap until `until`
    /// (seconds since the epoch); 0: not paused.
    pub fn set_paused(&self, rate_limit: bool, until: f64) {
        let f = &self.families;
        let (on, off) = if rate_limit {
            (&f.rate_limited_until, &f.spend_cap_until)
        } else {
            (&f.spend_cap_until, &f.rate_limited_until)
        };
        on.with_label_values(&[&self.worker]).set(until);
        off.with_label_values(&[&self.worker]).set(0.0);
    }

    /// A queued task was claimed `waited` after it arrived.
    pub fn claimed(&self, waited: Duration) {
        self.latency.observe(waited.as_secs_f64());
    }

    /// Sets the gauges from the loop's state.
    pub fn set_state(&self, s: &State) {
        let f = &self.families;
        let w = [self.worker.as_str()];
        f.queue_size.with_label_values(&w).set(s.queue_size as i64);
        f.active.with_label_values(&w).set(s.active as i64);
        f.waiting_retry.with_label_values(&w).set(s.waiting_retry as i64);
        f.max_concurrent.with_label_values(&w).set(s.max_concurrent as i64);
        f.breaker.with_label_values(&w).set(s.breaker);
        f.oldest_queued_age.with_label_values(&w).set(s.oldest_queued_age);
        f.heartbeat_age.with_label_values(&w).set(s.heartbeat_age);
        f.healthy.with_label_values(&w).set(i64::from(s.healthy));
        f.up.with_label_values(&w).set(i64::from(s.up));
        f.credential_fault.with_label_values(&w).set(i64::from(s.credential_fault));
    }

    /// Copies the endpoint's own counters.
    pub fn set_http(&self, st: &crate::http::Stats) {
        let w = self.worker.as_str();
        for (event, total) in [
            ("accepted", st.accepted),
            ("answered", st.responses),
            ("rejected", st.rejected),
            ("evicted", st.evicted),
            ("timed_out", st.timed_out),
        ] {
            let c = self.families.http_events.with_label_values(&[w, event]);
            c.inc_by(total.saturating_sub(c.get()));
        }
    }

    /// The text exposition of everything, with the process figures read now.
    pub fn encode(&self) -> prometheus::Result<Vec<u8>> {
        self.process.refresh();
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    /// The families, for a daemon that adds to them (the listener) or reads them (tests).
    pub fn families(&self) -> &Families {
        &self.families
    }
}

#[cfg(test)]
mod tests;
