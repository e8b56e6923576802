//! What the listener counts of one worker's results. Kept in its state file, so the
//! counters it serves never go back when it restarts, and never count a result twice.
//!
//! Derived from result files only: a worker's retries, per-attempt durations and detection
//! latency are on the worker's own endpoint, not here (`metrics::WORKER_ONLY`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::format::records::{CANCELLED, COMPLETED};
use crate::format::summary::Summary;
use crate::metrics::{DURATION_BUCKETS, REASONS};

/// The `reason` label of a failure whose reason is not one of [`REASONS`].
pub const OTHER_REASON: &str = "other";

/// A histogram: per-bucket counts (not cumulative; one more for +Inf), sum and count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { buckets: vec![0; DURATION_BUCKETS.len() + 1], sum: 0.0, count: 0 }
    }
}

impl Histogram {
    pub fn observe(&mut self, v: f64) {
        if self.buckets.len() != DURATION_BUCKETS.len() + 1 {
            // A state file of other buckets: start this histogram again rather than lie.
            *self = Histogram::default();
        }
        let i = DURATION_BUCKETS.iter().position(|b| v <= *b).unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `(upper bound, cumulative count)` for each finite bucket.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        DURATION_BUCKETS
            .iter()
            .zip(self.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(b, n)| {
                total += n;
                (*b, total)
            })
            .collect()
    }
}

/// Tokens of the agents' usage, by the `kind` label of `watcher_agent_tokens_total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_creation_input: u64,
    pub cache_read_input: u64,
}

impl Tokens {
    pub fn by_kind(&self) -> [(&'static str, u64); 4] {
        [
            ("input", self.input),
            ("output", self.output),
            ("cache_creation_input", self.cache_creation_input),
            ("cache_read_input", self.cache_read_input),
        ]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub completed: u64,
    #[serde(default)]
    pub failed: u64,
    /// Results of tasks cancelled (`watcherctl cancel`).
    #[serde(default)]
    pub cancelled: u64,
    /// Failed results by reason (those of [`REASONS`], else [`OTHER_REASON`]).
    #[serde(default)]
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Files in the result folder that are not results it can read.
    #[serde(default)]
    pub unreadable: u64,
    /// `duration_seconds` of each result (its last attempt).
    #[serde(default)]
    pub duration: Histogram,
    #[serde(default)]
    pub cost_usd: f64,
    #[serde(default)]
    pub tokens: Tokens,
    /// `num_turns` the agents reported.
    #[serde(default)]
    pub turns: u64,
}

/// The `reason` label for a failure's reason.
pub fn reason_label(reason: Option<&str>) -> &'static str {
    reason.and_then(|r| REASONS.iter().find(|k| **k == r).copied()).unwrap_or(OTHER_REASON)
}

impl Counts {
    pub fn record(&mut self, s: &Summary) {
        if s.status == COMPLETED {
            self.completed += 1;
        } else if s.status == CANCELLED {
            self.cancelled += 1;
        } else {
            self.failed += 1;
            *self.failed_by_reason.entry(reason_label(s.reason.as_deref()).to_string()).or_default() += 1;
        }
        if let Some(d) = s.duration_seconds {
            self.duration.observe(d);
        }
        if let Some(a) = &s.agent {
            if let Some(cost) = a.total_cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
                self.cost_usd += cost;
            }
            self.turns = self.turns.saturating_add(a.num_turns.unwrap_or(0));
            let t = &mut self.tokens;
            t.input = t.input.saturating_add(a.input_tokens);
            t.output = t.output.saturating_add(a.output_tokens);
            t.cache_creation_input = t.cache_creation_input.saturating_add(a.cache_creation_input_tokens);
            t.cache_read_input = t.cache_read_input.saturating_add(a.cache_read_input_tokens);
        }
    }

    pub fn failed_for(&self, reason: &str) -> u64 {
        self.failed_by_reason.get(reason).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::summary::Agent;

    fn summary(status: &'static str, reason: Option<&str>, d: f64) -> Summary {
        Summary {
            task_id: "t".into(),
            status,
            reason: reason.map(str::to_string),
            exit_code: None,
            attempts: Some(1),
            started_at: None,
            finished_at: None,
            duration_seconds: Some(d),
            metadata: serde_json::Value::Null,
            agent: Some(Agent {
                total_cost_usd: Some(0.25),
                num_turns: Some(2),
                input_tokens: 3,
                ..Agent::default()
            }),
            batch: None,
        }
    }

    #[test]
    fn results_are_counted_by_status_reason_and_duration() {
        let mut c = Counts::default();
        c.record(&summary("completed", None, 0.2));
        c.record(&summary("failed", Some("timeout"), 700.0));
        c.record(&summary("failed", Some("made-up"), 1e9));
        c.record(&summary("cancelled", None, 0.1));
        assert_eq!((c.completed, c.failed, c.cancelled), (1, 2, 1));
        assert_eq!((c.failed_for("timeout"), c.failed_for(OTHER_REASON)), (1, 1));
        assert_eq!(c.duration.count, 4);
        let cum = c.duration.cumulative();
        assert_eq!(cum[0], (0.5, 2));
        assert_eq!(cum.last().map(|b| b.1), Some(3), "1e9 s is only in +Inf");
        assert_eq!((c.cost_usd, c.tokens.input, c.turns), (1.0, 12, 8));
    }

    #[test]
    fn counts_survive_their_json() {
        let mut c = Counts::default();
        c.record(&summary("failed", Some("exit_code"), 3.0));
        let back: Counts = serde_json::from_str(&serde_json::to_string(&c).expect("json")).expect("parse");
        assert_eq!(back, c);
    }
}
