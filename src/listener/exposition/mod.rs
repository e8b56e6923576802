//! What the host's scrape target serves: every worker's families, labelled `worker`, derived
//! from its result files (counters kept in the state file, so they survive restarts) and
//! its heartbeat (gauges), plus the listener's own families and process figures.
//!
//! On an engine shared by hosts (SPOOL=redis://…) a worker has a heartbeat per host: what a
//! heartbeat tells (up, its age, running tasks, the breaker, pauses, the version) is served
//! per host, labelled `host` besides `worker` (the label a worker's own endpoint leaves to
//! the scrape's `instance`); the counts of results and `watcher_healthy` stay per worker. A
//! worker none of whose hosts has a heartbeat is served `watcher_worker_up` 0 without a
//! `host`, as on the folders. The folders are one host's: their series carry no `host`
//! label, as they always did ([`crate::spool::listener::ONE_HOST`]).
//!
//! The derived families are built at scrape time from the listener's counts (the
//! `prometheus` crate's plain data model, encoded by its text encoder), since a counter
//! restored from a file cannot be set through the crate's metric types. The listener does
//! not proxy the workers' own endpoints: their per-attempt durations, detection latency,
//! retries and process figures stay on each worker's socket.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use super::counts::{Counts, OTHER_REASON};
use super::health::{Beat, Verdict};
use crate::metrics::REASONS;

/// One worker, as a scrape sees it.
pub struct WorkerView<'a> {
    pub name: &'a str,
    pub counts: &'a Counts,
    /// Each host's heartbeat; empty: none.
    pub hosts: Vec<HostView<'a>>,
    /// The listener's verdict on the worker (healthy while any of its hosts is).
    pub verdict: &'a Verdict,
}

/// One host's heartbeat of a worker, as a scrape sees it.
pub struct HostView<'a> {
    /// Empty on a spool of one host: no `host` label.
    pub host: &'a str,
    /// `None`: unreadable.
    pub beat: Option<&'a Beat>,
    /// Its age (see `freshness`), when it was read.
    pub age: Option<f64>,
    /// Fresh and not `stopped`, judged at the scrape (`Beat::stale_limit`).
    pub up: bool,
}

/// The labels of a worker's series about `host`: `worker`, and `host` unless it is empty.
fn of_host<'a>(worker: &'a str, host: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut pairs = vec![("worker", worker)];
    if !host.is_empty() {
        pairs.push(("host", host));
    }
    pairs
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, &str)], v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn histogram(pairs: &[(&str, &str)], h: &super::counts::Histogram) -> Metric {
    let buckets = h
        .cumulative()
        .into_iter()
        .map(|(bound, n)| {
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(n);
            b
        })
        .collect();
    let mut hist = Histogram::default();
    hist.set_bucket(buckets);
    hist.set_sample_count(h.count);
    hist.set_sample_sum(h.sum);
    let mut m = Metric::from_label(labels(pairs));
    m.set_histogram(hist);
    m
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

/// The derived families, in the order of [`SPECS`].
#[derive(Clone, Copy)]
enum F {
    Processed,
    Failed,
    DeadLetters,
    Duration,
    Cost,
    Tokens,
    Turns,
    Results,
    Queue,
    Active,
    Breaker,
    Waiting,
    MaxConcurrent,
    OldestAge,
    RateLimited,
    SpendCap,
    Credential,
    Up,
    Healthy,
    Age,
    BuildInfo,
}

const C: MetricType = MetricType::COUNTER;
const G: MetricType = MetricType::GAUGE;

/// Name, help and type of each of [`F`]. Each name, its labels and type are those of a
/// worker's own endpoint (`crate::metrics::Families`), so a query means the same whichever
/// target is scraped (with `host` besides, on a shared engine, where the scrape's `instance`
/// no longer tells the hosts apart); `watcher_listener_*` names are the listener's alone.
const SPECS: [(&str, &str, MetricType); 21] = [
    ("watcher_tasks_processed_total", "Tasks finished, by final status, counted from the workers' result files.", C),
    (
        "watcher_tasks_failed_total",
        "Tasks finally failed, by reason, counted from the workers' result files (other: a reason this \
         version does not know).",
        C,
    ),
    (
        "watcher_dead_letters_total",
        "Dead letters, by reason, counted from the workers' failed results (each comes with one).",
        C,
    ),
    (
        "watcher_task_duration_seconds",
        "Duration of each finished task's last attempt (duration_seconds of its result).",
        MetricType::HISTOGRAM,
    ),
    ("watcher_agent_cost_usd_total", "Cost the agents reported in the results, in US dollars.", C),
    ("watcher_agent_tokens_total", "Tokens the agents reported in the results, by kind.", C),
    ("watcher_agent_turns_total", "Turns the agents reported in the results (num_turns).", C),
    (
        "watcher_listener_results_total",
        "Result files read, by status: completed, failed, cancelled, or unreadable (not a result).",
        C,
    ),
    ("watcher_task_queue_size", "Tasks in the queue, not yet claimed, as of the worker's last heartbeat.", G),
    ("watcher_active_tasks", "Agent runs in progress, as of the worker's last heartbeat.", G),
    (
        "watcher_circuit_breaker_state",
        "Circuit breaker as of the worker's last heartbeat: 0 closed, 1 open, 2 half-open.",
        G,
    ),
    ("watcher_tasks_waiting_retry", "Claimed tasks waiting for their retry time, as of the last heartbeat.", G),
    ("watcher_max_concurrent_tasks", "MAX_CONCURRENT_TASKS of the worker, as of its last heartbeat.", G),
    (
        "watcher_oldest_queued_task_age_seconds",
        "Age of the oldest task in the queue (now minus its arrival, as of the last heartbeat); 0 when empty.",
        G,
    ),
    (
        "watcher_rate_limited_until_seconds",
        "While a usage or rate limit pauses the worker: when it resets, in seconds since the epoch; else 0.",
        G,
    ),
    (
        "watcher_spend_cap_until_seconds",
        "While the spend cap pauses the worker: until when, in seconds since the epoch; else 0.",
        G,
    ),
    (
        "watcher_credential_fault",
        "1 while the worker's breaker is open (or half-open) because the agent's credentials were refused.",
        G,
    ),
    ("watcher_worker_up", "1 when the worker's heartbeat is fresh and does not say stopped.", G),
    (
        "watcher_healthy",
        "1 when orchestrator-listener judges the worker healthy (no worker_unhealthy outstanding).",
        G,
    ),
    (
        "watcher_heartbeat_age_seconds",
        "Age of the worker's heartbeat, on the listener's monotonic clock since it saw the heartbeat change.",
        G,
    ),
    ("watcher_build_info", "Always 1; the worker's version (from its heartbeat) in a label.", G),
];

/// The names of the derived families.
pub fn family_names() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|(name, _, _)| *name)
}

/// The families derived from the workers' files, one per name, empty ones left out.
pub fn derived(workers: &[WorkerView]) -> Vec<MetricFamily> {
    let mut out: Vec<Vec<Metric>> = SPECS.iter().map(|_| Vec::new()).collect();
    let now = crate::sys::clock::now_f64();
    for w in workers {
        let mut push = |f: F, m: Metric| out[f as usize].push(m);
        from_results(w.name, w.counts, &mut push);
        for h in &w.hosts {
            let pairs = of_host(w.name, h.host);
            if let Some(b) = h.beat {
                from_heartbeat(&pairs, b, h.age, now, &mut push);
            }
            push(F::Up, gauge(&pairs, f64::from(u8::from(h.up))));
        }
        let one = [("worker", w.name)];
        if w.hosts.is_empty() {
            push(F::Up, gauge(&one, f64::from(u8::from(w.verdict.up))));
        }
        push(F::Healthy, gauge(&one, f64::from(u8::from(w.verdict.problems.is_empty()))));
    }
    SPECS
        .iter()
        .zip(out)
        .filter(|(_, metrics)| !metrics.is_empty())
        .map(|((name, help, kind), metrics)| family(name, help, *kind, metrics))
        .collect()
}

/// The counters of one worker's results.
fn from_results(name: &str, c: &Counts, push: &mut impl FnMut(F, Metric)) {
    let one = [("worker", name)];
    push(F::Processed, counter(&[("worker", name), ("status", "completed")], c.completed as f64));
    push(F::Processed, counter(&[("worker", name), ("status", "failed")], c.failed as f64));
    push(F::Processed, counter(&[("worker", name), ("status", "cancelled")], c.cancelled as f64));
    for reason in REASONS.iter().copied().chain([OTHER_REASON]) {
        let n = c.failed_for(reason);
        if n > 0 || reason != OTHER_REASON {
            let pairs = [("worker", name), ("reason", reason)];
            push(F::Failed, counter(&pairs, n as f64));
            push(F::DeadLetters, counter(&pairs, n as f64));
        }
    }
    push(F::Duration, histogram(&one, &c.duration));
    push(F::Cost, counter(&one, c.cost_usd));
    for (kind, n) in c.tokens.by_kind() {
        push(F::Tokens, counter(&[("worker", name), ("kind", kind)], n as f64));
    }
    push(F::Turns, counter(&one, c.turns as f64));
    let statuses = [
        ("completed", c.completed),
        ("failed", c.failed),
        ("cancelled", c.cancelled),
        ("unreadable", c.unreadable),
    ];
    for (status, n) in statuses {
        push(F::Results, counter(&[("worker", name), ("status", status)], n as f64));
    }
}

/// The gauges of one heartbeat of a worker (labelled `one`: the worker, and the host that
/// wrote it), `age` seconds old (as judged, see `freshness`), read at `now`.
fn from_heartbeat(
    one: &[(&str, &str)],
    b: &Beat,
    age: Option<f64>,
    now: f64,
    push: &mut impl FnMut(F, Metric),
) {
    push(F::Queue, gauge(one, b.queue_size as f64));
    push(F::Active, gauge(one, b.active_tasks as f64));
    push(F::Breaker, gauge(one, b.breaker_gauge() as f64));
    push(F::Waiting, gauge(one, b.retry_waiting as f64));
    push(F::MaxConcurrent, gauge(one, b.max_concurrent as f64));
    // A heartbeat of a version that does not state it says nothing of the age.
    match b.oldest_queued_at {
        Some(at) => push(F::OldestAge, gauge(one, (now - at).max(0.0))),
        None if b.queue_size == 0 => push(F::OldestAge, gauge(one, 0.0)),
        None => {}
    }
    let (rate_limited, spend_cap) = b.paused();
    push(F::RateLimited, gauge(one, rate_limited));
    push(F::SpendCap, gauge(one, spend_cap));
    push(F::Credential, gauge(one, f64::from(u8::from(b.credential_fault()))));
    push(F::Age, gauge(one, age.unwrap_or_else(|| (now - b.timestamp).max(0.0))));
    if !b.version.is_empty() {
        let mut pairs = one.to_vec();
        pairs.push(("version", &b.version));
        push(F::BuildInfo, gauge(&pairs, 1.0));
    }
}

/// The text exposition of `families`, sorted by name (each name once).
pub fn encode(mut families: Vec<MetricFamily>) -> prometheus::Result<Vec<u8>> {
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(64 * 1024);
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
