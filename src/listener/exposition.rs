//! What the host's scrape target serves: every worker's families, labelled `worker`, derived
//! from its result files (counters kept in the state file, so they survive restarts) and
//! its heartbeat (gauges), plus the listener's own families and process figures.
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
    pub beat: Option<&'a Beat>,
    /// Its heartbeat's age (see `freshness`), when it has one.
    pub age: Option<f64>,
    pub verdict: &'a Verdict,
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
    Duration,
    Cost,
    Tokens,
    Results,
    Queue,
    Active,
    Breaker,
    Waiting,
    MaxConcurrent,
    Up,
    Healthy,
    Age,
}

/// Name, help and type of each of [`F`].
const SPECS: [(&str, &str, MetricType); 14] = [
    (
        "watcher_tasks_processed_total",
        "Tasks finished, by final status, counted from the workers' result files.",
        MetricType::COUNTER,
    ),
    (
        "watcher_tasks_failed_total",
        "Tasks finally failed, by reason, counted from the workers' result files (other: a reason this \
         version does not know).",
        MetricType::COUNTER,
    ),
    (
        "watcher_task_duration_seconds",
        "Duration of each finished task's last attempt (duration_seconds of its result).",
        MetricType::HISTOGRAM,
    ),
    (
        "watcher_agent_cost_usd_total",
        "Cost the agents reported in the results, in US dollars.",
        MetricType::COUNTER,
    ),
    (
        "watcher_agent_tokens_total",
        "Tokens the agents reported in the results, by type.",
        MetricType::COUNTER,
    ),
    (
        "watcher_results_total",
        "Result files read, by status: completed, failed, or unreadable (not a result).",
        MetricType::COUNTER,
    ),
    (
        "watcher_task_queue_size",
        "Tasks in the queue, not yet claimed, as of the worker's last heartbeat.",
        MetricType::GAUGE,
    ),
    ("watcher_active_tasks", "Agent runs in progress, as of the worker's last heartbeat.", MetricType::GAUGE),
    (
        "watcher_circuit_breaker_state",
        "Circuit breaker as of the worker's last heartbeat: 0 closed, 1 open, 2 half-open.",
        MetricType::GAUGE,
    ),
    (
        "watcher_tasks_waiting_retry",
        "Claimed tasks waiting for their retry time, as of the worker's last heartbeat.",
        MetricType::GAUGE,
    ),
    (
        "watcher_max_concurrent_tasks",
        "MAX_CONCURRENT_TASKS of the worker, as of its last heartbeat.",
        MetricType::GAUGE,
    ),
    (
        "watcher_worker_up",
        "1 when the worker's heartbeat is fresh and does not say stopped.",
        MetricType::GAUGE,
    ),
    (
        "watcher_worker_healthy",
        "1 when orchestrator-listener judges the worker healthy (no worker_unhealthy outstanding).",
        MetricType::GAUGE,
    ),
    (
        "watcher_worker_heartbeat_age_seconds",
        "Age of the worker's heartbeat, on the listener's monotonic clock since it saw the heartbeat change.",
        MetricType::GAUGE,
    ),
];

/// The names of the derived families.
pub fn family_names() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|(name, _, _)| *name)
}

/// The families derived from the workers' files, one per name, empty ones left out.
pub fn derived(workers: &[WorkerView]) -> Vec<MetricFamily> {
    let mut out: Vec<Vec<Metric>> = SPECS.iter().map(|_| Vec::new()).collect();
    for w in workers {
        let (name, c) = (w.name, w.counts);
        let mut push = |f: F, m: Metric| out[f as usize].push(m);
        let one = [("worker", name)];
        push(F::Processed, counter(&[("worker", name), ("status", "completed")], c.completed as f64));
        push(F::Processed, counter(&[("worker", name), ("status", "failed")], c.failed as f64));
        for reason in REASONS.iter().copied().chain([OTHER_REASON]) {
            let n = c.failed_for(reason);
            if n > 0 || reason != OTHER_REASON {
                push(F::Failed, counter(&[("worker", name), ("reason", reason)], n as f64));
            }
        }
        push(F::Duration, histogram(&one, &c.duration));
        push(F::Cost, counter(&one, c.cost_usd));
        for (kind, n) in c.tokens.by_type() {
            push(F::Tokens, counter(&[("worker", name), ("type", kind)], n as f64));
        }
        for (status, n) in [("completed", c.completed), ("failed", c.failed), ("unreadable", c.unreadable)] {
            push(F::Results, counter(&[("worker", name), ("status", status)], n as f64));
        }
        if let Some(b) = w.beat {
            push(F::Queue, gauge(&one, b.queue_size as f64));
            push(F::Active, gauge(&one, b.active_tasks as f64));
            push(F::Breaker, gauge(&one, b.breaker_gauge() as f64));
            push(F::Waiting, gauge(&one, b.retry_waiting as f64));
            push(F::MaxConcurrent, gauge(&one, b.max_concurrent as f64));
            push(F::Age, gauge(&one, w.age.unwrap_or(0.0)));
        }
        push(F::Up, gauge(&one, f64::from(u8::from(w.verdict.up))));
        push(F::Healthy, gauge(&one, f64::from(u8::from(w.verdict.problems.is_empty()))));
    }
    SPECS
        .iter()
        .zip(out)
        .filter(|(_, metrics)| !metrics.is_empty())
        .map(|((name, help, kind), metrics)| family(name, help, *kind, metrics))
        .collect()
}

/// The text exposition of `families`, sorted by name (each name once).
pub fn encode(mut families: Vec<MetricFamily>) -> prometheus::Result<Vec<u8>> {
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(64 * 1024);
    TextEncoder::new().encode(&families, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::health::{judge, Reading};

    #[test]
    fn every_worker_has_every_family_once() {
        let mut counts = Counts { completed: 3, ..Counts::default() };
        counts.duration.observe(1.0);
        let beat = Beat {
            timestamp: crate::clock::now_f64(),
            status: "idle".into(),
            queue_size: 4,
            ..Beat::default()
        };
        let verdict = judge(&Reading::Beat(beat.clone()), true, crate::clock::now_f64(), 0.0, None);
        let none = judge(&Reading::Missing, false, 0.0, 0.0, None);
        let views = [
            WorkerView {
                name: "marie",
                counts: &counts,
                beat: Some(&beat),
                age: Some(0.5),
                verdict: &verdict,
            },
            WorkerView { name: "anga", counts: &Counts::default(), beat: None, age: None, verdict: &none },
        ];
        let text = String::from_utf8(encode(derived(&views)).expect("encode")).expect("utf-8");
        assert_eq!(text.matches("# TYPE watcher_tasks_processed_total counter").count(), 1);
        assert!(
            text.contains("watcher_tasks_processed_total{worker=\"marie\",status=\"completed\"} 3"),
            "{text}"
        );
        assert!(text.contains("watcher_tasks_processed_total{worker=\"anga\",status=\"failed\"} 0"));
        assert!(text.contains("watcher_task_queue_size{worker=\"marie\"} 4"));
        assert!(!text.contains("watcher_task_queue_size{worker=\"anga\"}"), "no heartbeat, no gauge");
        assert!(text.contains("watcher_worker_up{worker=\"anga\"} 0"));
        assert!(text.contains("watcher_task_duration_seconds_bucket{worker=\"marie\",le=\"1\"} 1"), "{text}");
        assert!(!text.contains("reason=\"other\""), "other only once it happened");
    }
}
