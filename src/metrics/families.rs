//! The metric families of a worker, labelled `worker`: their names, help texts and buckets
//! in one place. The listener registers the same families to serve workers it aggregates.

use crate::agent::reason;
use prometheus::{
    CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Why a task fails: the `reason` of results and dead letters.
pub const REASONS: &[&str] = &reason::FINAL;

/// Reasons an attempt can be retried for (a file that is not a task never is).
const RETRY_REASONS: &[&str] = &reason::RETRIED;

/// Why a run is not charged as an attempt.
pub const UNCHARGED_REASONS: &[&str] = &reason::UNCHARGED;

/// The `status` of `watcher_tasks_processed_total`: every final status of a result.
pub const STATUSES: &[&str] = &["completed", "failed", "cancelled"];

/// What the metrics endpoint counts of its connections.
pub const HTTP_EVENTS: &[&str] = &["accepted", "answered", "rejected", "evicted", "timed_out"];

/// How an agent run used its task's session: a new one, resumed, or refused by the agent
/// (`missing`: it had lost the session, a fresh one replaced it; `in_use`: it had the session
/// already, which was then resumed).
pub const SESSION_KINDS: &[&str] = &["new", "resumed", "missing", "in_use"];

/// Token kinds of Claude's `usage`.
pub const TOKEN_KINDS: &[&str] = &["input", "output", "cache_creation_input", "cache_read_input"];

/// The families only a worker's own endpoint serves: what no file of the spool tells the
/// listener (retries by reason, detection latency, runs not charged, the endpoint's
/// connections) and the worker's process (a prefix ends in `_`). The listener serves every
/// other family, under the same name, labels and type.
pub const WORKER_ONLY: &[&str] = &[
    "watcher_task_retries_total",
    "watcher_task_detection_latency_seconds",
    "watcher_runs_uncharged_total",
    "watcher_http_connections_total",
    "watcher_agent_cpu_seconds_total",
    "watcher_agent_session_runs_total",
    "process_",
];

/// Agent runs: from half a second to two hours.
pub const DURATION_BUCKETS: &[f64] =
    &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0];

/// Arrival to claim: from a millisecond (inotify) to minutes (a backlog).
pub const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

pub struct Families {
    // The old design's six, named exactly.
    pub processed: IntCounterVec,
    pub failed: IntCounterVec,
    pub duration: HistogramVec,
    pub queue_size: IntGaugeVec,
    pub active: IntGaugeVec,
    pub breaker: IntGaugeVec,
    // Beyond them.
    pub retries: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub waiting_retry: IntGaugeVec,
    pub max_concurrent: IntGaugeVec,
    pub oldest_queued_age: GaugeVec,
    pub detection_latency: HistogramVec,
    pub agent_cost: CounterVec,
    pub agent_tokens: IntCounterVec,
    pub agent_turns: IntCounterVec,
    pub uncharged: IntCounterVec,
    pub session_runs: IntCounterVec,
    pub rate_limited_until: GaugeVec,
    pub spend_cap_until: GaugeVec,
    pub heartbeat_age: GaugeVec,
    pub healthy: IntGaugeVec,
    pub up: IntGaugeVec,
    pub credential_fault: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub http_events: IntCounterVec,
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> prometheus::Result<C> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Families {
    pub fn register(r: &Registry) -> prometheus::Result<Families> {
        let w = &["worker"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        let gauge = |name: &str, help: &str| reg(r, IntGaugeVec::new(Opts::new(name, help), w)?);
        let fgauge = |name: &str, help: &str| reg(r, GaugeVec::new(Opts::new(name, help), w)?);
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            reg(r, HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), w)?)
        };
        Ok(Families {
            processed: counter(
                "watcher_tasks_processed_total",
                "Tasks finished, by final status: completed, failed (given up on and dead-lettered), or cancelled (watcherctl cancel).",
                &["worker", "status"],
            )?,
            failed: counter(
                "watcher_tasks_failed_total",
                "Tasks finally failed, by the reason of their last attempt (invalid: not a task).",
                &["worker", "reason"],
            )?,
            duration: histogram(
                "watcher_task_duration_seconds",
                "Duration of each agent run (one per attempt, failed ones included).",
                DURATION_BUCKETS,
            )?,
            queue_size: gauge("watcher_task_queue_size", "Tasks in the queue, not yet claimed.")?,
            active: gauge("watcher_active_tasks", "Agent runs in progress.")?,
            breaker: gauge("watcher_circuit_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half-open.")?,
            retries: counter(
                "watcher_task_retries_total",
                "Failed attempts that were scheduled for a retry, by reason.",
                &["worker", "reason"],
            )?,
            dead_letters: counter(
                "watcher_dead_letters_total",
                "Dead letters written, by reason.",
                &["worker", "reason"],
            )?,
            waiting_retry: gauge("watcher_tasks_waiting_retry", "Claimed tasks waiting for their retry time.")?,
            max_concurrent: gauge("watcher_max_concurrent_tasks", "Agent runs allowed at once (MAX_CONCURRENT_TASKS).")?,
            oldest_queued_age: fgauge(
                "watcher_oldest_queued_task_age_seconds",
                "Age of the oldest task in the queue, since its arrival; 0 when the queue is empty.",
            )?,
            detection_latency: histogram(
                "watcher_task_detection_latency_seconds",
                "From a task's arrival in the queue (its notification, or its mtime when found by a scan) to its claim; includes any wait for a free slot.",
                LATENCY_BUCKETS,
            )?,
            agent_cost: reg(
                r,
                CounterVec::new(Opts::new("watcher_agent_cost_usd_total", "Cost the agent reported (total_cost_usd), in US dollars."), w)?,
            )?,
            agent_tokens: counter(
                "watcher_agent_tokens_total",
                "Tokens the agent reported in its usage, by kind.",
                &["worker", "kind"],
            )?,
            agent_turns: counter("watcher_agent_turns_total", "Turns the agent reported (num_turns).", w)?,
            uncharged: counter(
                "watcher_runs_uncharged_total",
                "Agent runs not charged to their task: stopped by a usage or rate limit, or an outage of the agent's service (credential, network, service).",
                &["worker", "reason"],
            )?,
            session_runs: counter(
                "watcher_agent_session_runs_total",
                "Agent runs by how they used their task's session (AGENT_SESSION_FLAG): new, resumed, or refused by the agent (missing: replaced by a fresh session; in_use: resumed instead).",
                &["worker", "session"],
            )?,
            rate_limited_until: fgauge(
                "watcher_rate_limited_until_seconds",
                "While a usage or rate limit pauses the worker: when it resets, in seconds since the epoch; else 0.",
            )?,
            spend_cap_until: fgauge(
                "watcher_spend_cap_until_seconds",
                "While the spend cap (WORKER_BUDGET_USD) pauses the worker: until when, in seconds since the epoch; else 0.",
            )?,
            heartbeat_age: fgauge(
                "watcher_heartbeat_age_seconds",
                "Time since the heartbeat file was last written durably.",
            )?,
            healthy: gauge(
                "watcher_healthy",
                "1 when /healthz answers 200: loop turning, heartbeat fresh, breaker not open, not stopping.",
            )?,
            up: gauge(
                "watcher_worker_up",
                "1 while the worker's heartbeat is fresh and it is not stopping or stopped.",
            )?,
            credential_fault: gauge(
                "watcher_credential_fault",
                "1 while the breaker is open (or half-open) because the agent's credentials were refused.",
            )?,
            build_info: reg(
                r,
                IntGaugeVec::new(Opts::new("watcher_build_info", "Always 1; the version in a label."), &["worker", "version"])?,
            )?,
            http_events: counter(
                "watcher_http_connections_total",
                "Connections to the metrics endpoint: accepted, answered, rejected (400/431), evicted (to make room), timed_out.",
                &["worker", "event"],
            )?,
        })
    }

    /// Creates every series of `worker` at zero, so each family is there from the start.
    pub fn init(&self, worker: &str) -> prometheus::Result<()> {
        for status in STATUSES {
            self.processed.get_metric_with_label_values(&[worker, status])?;
        }
        for reason in REASONS {
            self.failed.get_metric_with_label_values(&[worker, reason])?;
            self.dead_letters.get_metric_with_label_values(&[worker, reason])?;
        }
        for reason in RETRY_REASONS {
            self.retries.get_metric_with_label_values(&[worker, reason])?;
        }
        for event in HTTP_EVENTS {
            self.http_events.get_metric_with_label_values(&[worker, event])?;
        }
        for kind in TOKEN_KINDS {
            self.agent_tokens.get_metric_with_label_values(&[worker, kind])?;
        }
        for reason in UNCHARGED_REASONS {
            self.uncharged.get_metric_with_label_values(&[worker, reason])?;
        }
        for kind in SESSION_KINDS {
            self.session_runs.get_metric_with_label_values(&[worker, kind])?;
        }
        self.agent_turns.get_metric_with_label_values(&[worker])?;
        self.rate_limited_until.get_metric_with_label_values(&[worker])?;
        self.spend_cap_until.get_metric_with_label_values(&[worker])?;
        let w = &[worker];
        self.duration.get_metric_with_label_values(w)?;
        self.detection_latency.get_metric_with_label_values(w)?;
        self.agent_cost.get_metric_with_label_values(w)?;
        for g in [
            &self.queue_size,
            &self.active,
            &self.breaker,
            &self.waiting_retry,
            &self.max_concurrent,
            &self.healthy,
            &self.up,
            &self.credential_fault,
        ] {
            g.get_metric_with_label_values(w)?;
        }
        self.oldest_queued_age.get_metric_with_label_values(w)?;
        self.heartbeat_age.get_metric_with_label_values(w)?;
        Ok(())
    }
}
