//! The files the daemons write: results, dead letters, claim receipts and heartbeats.
//! worker-watcher-tasks(5) documents them field by field; the listener and watcherctl read
//! them back with the same types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::reason::Reason;
use crate::agent::AgentReport;
use crate::format::task::{Failure, Run, Session};

pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";
/// Cancelled by `watcherctl cancel`: its own result, never dead-lettered nor retried.
pub const CANCELLED: &str = "cancelled";

/// The largest result, dead letter or event a reader takes (results carry the agent's output,
/// up to MAX_OUTPUT_BYTES; dead letters the task).
pub const MAX_RECORD_BYTES: u64 = 256 << 20;

/// The largest heartbeat a reader takes.
pub const MAX_HEARTBEAT_BYTES: u64 = 64 * 1024;

/// `results/<worker>/<task_id>.json`: the one final outcome of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task_id: String,
    pub worker: String,
    /// `completed`, `failed` or `cancelled`.
    pub status: String,
    /// On failure: one of [`crate::agent::reason::FINAL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The agent's stdout: its JSON when it printed JSON, else its text.
    #[serde(default)]
    pub output: Value,
    #[serde(default)]
    pub output_truncated: bool,
    /// Bytes the agent wrote to stdout, kept or not.
    #[serde(default)]
    pub output_bytes: u64,
    #[serde(default)]
    pub stderr_tail: String,
    pub attempts: u32,
    #[serde(default)]
    pub started_at: Option<String>,
    pub finished_at: String,
    #[serde(default)]
    pub duration_seconds: f64,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentReport>,
    /// Every agent run of the task, oldest first: its attempt, session id and cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
}

impl TaskResult {
    /// A completed result of `task_id` with nothing else known yet: the caller sets what it
    /// knows (the agent's run, the task's metadata).
    pub fn new(task_id: String, worker: String, hostname: String, finished_at: String) -> TaskResult {
        TaskResult {
            task_id,
            worker,
            status: COMPLETED.into(),
            reason: None,
            message: None,
            exit_code: None,
            signal: None,
            output: Value::Null,
            output_truncated: false,
            output_bytes: 0,
            stderr_tail: String::new(),
            attempts: 0,
            started_at: None,
            finished_at,
            duration_seconds: 0.0,
            hostname,
            metadata: Value::Null,
            agent: None,
            runs: Vec::new(),
        }
    }

    /// The same result, cancelled (`watcherctl cancel`) with `message`.
    pub fn cancelled(self, message: String) -> TaskResult {
        TaskResult { status: CANCELLED.into(), reason: None, message: Some(message), ..self }
    }

    /// The same result, failed for `reason`.
    pub fn failed(self, reason: Reason, message: String) -> TaskResult {
        TaskResult {
            status: FAILED.into(),
            reason: Some(reason.as_str().into()),
            message: Some(message),
            ..self
        }
    }
}

/// The head of a result: enough to tell what kind it is.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ResultHead {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
}

impl ResultHead {
    /// The failed result of a file rejected as invalid: a corrected task of the same id
    /// replaces it (the worker, `watcherctl submit` and `dlq retry` all take it).
    pub fn is_invalid(&self) -> bool {
        self.status == FAILED && self.reason.as_deref() == Some(Reason::Invalid.as_str())
    }
}

/// `dlq/<worker>/<name>.json`: a task given up on, with why and its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `None` when the file had no usable id.
    pub task_id: Option<String>,
    pub worker: String,
    pub reason: String,
    pub message: String,
    pub dead_lettered_at: String,
    pub attempts: u32,
    #[serde(default)]
    pub history: Vec<Failure>,
    /// The queue file's name as the producer wrote it.
    pub source_file: String,
    /// The task as submitted, when it was a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Value>,
    /// The start of the file's text, when it was not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_preview: Option<String>,
    /// Where the original file was kept, when its content is not in `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_file: Option<String>,
    pub hostname: String,
    /// The agent's session, resumed when the task is retried (`watcherctl dlq retry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// Every agent run of the task, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
}

/// `triggers/<worker>/<task_id>.json`: written when a task is claimed and its agent started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub task_id: String,
    pub worker: String,
    pub claimed_at: String,
    pub attempt: u32,
    pub pid: u32,
    pub agent_pid: u32,
    pub hostname: String,
    pub task_file: String,
    /// The agent's session for this run, and whether the run resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

/// `heartbeats/<worker>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub worker: String,
    pub pid: u32,
    pub hostname: String,
    /// Seconds since the epoch.
    pub timestamp: f64,
    /// The worker's state: [`crate::worker::state::WorkerState::as_str`].
    pub status: String,
    pub active_tasks: usize,
    pub queue_size: usize,
    /// Tasks claimed and waiting for their retry time.
    #[serde(default)]
    pub retry_waiting: usize,
    pub max_concurrent: usize,
    pub processed: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Tasks cancelled (`watcherctl cancel`); counted in `processed` too.
    #[serde(default)]
    pub cancelled: u64,
    /// `closed`, `open`, `half_open`.
    pub circuit_state: String,
    /// Why the breaker is open: `failures`, or the cause of an outage (`credential`,
    /// `network`, `service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_reason: Option<String>,
    /// While the worker is paused (`rate_limited` or `budget_exhausted`): until when, in
    /// seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<f64>,
    /// Why the worker is paused: `rate_limited` or `budget_exhausted` (its `status` says
    /// `circuit_open` or `stopping` when those come first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_open_until: Option<f64>,
    /// When the oldest task in the queue arrived, in seconds since the epoch; absent when the
    /// queue is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_queued_at: Option<f64>,
    /// Seconds since the epoch.
    pub started_at: f64,
    pub heartbeat_interval: f64,
    pub version: String,
    /// The latest error that is not about one task (a folder that cannot be written, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Where the metrics endpoint listens (`ADDR:PORT` or a unix socket path); empty when
    /// metrics are off. Tells the port the kernel chose for METRICS_PORT=0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<String>,
}

/// Heartbeat intervals without a new heartbeat after which a worker's heartbeat is stale: its
/// loop stalled, or it cannot write, or it is gone without saying so. The worker's own health,
/// `watcherctl status` and the listener all judge by this one rule.
pub const STALE_INTERVALS: f64 = 3.0;

impl Heartbeat {
    /// The age, in seconds, past which a heartbeat written every `interval` seconds is stale.
    pub fn stale_limit(interval: f64) -> f64 {
        STALE_INTERVALS * interval
    }

    /// Whether this heartbeat is stale at `now` (seconds since the epoch), aged by its own
    /// timestamp. (The listener ages heartbeats on its monotonic clock instead, and the worker
    /// its own; both use [`Heartbeat::stale_limit`].)
    pub fn is_stale(&self, now: f64) -> bool {
        now - self.timestamp > Heartbeat::stale_limit(self.heartbeat_interval)
    }
}

/// Serialises a record as pretty JSON with a final newline.
pub fn to_bytes<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(record).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_is_stale_past_three_of_its_intervals() {
        let hb: Heartbeat = serde_json::from_value(serde_json::json!({
            "worker": "marie", "pid": 1, "hostname": "h", "timestamp": 1000.0, "status": "idle",
            "active_tasks": 0, "queue_size": 0, "max_concurrent": 1, "processed": 0, "failed": 0,
            "retried": 0, "dead_lettered": 0, "circuit_state": "closed", "started_at": 900.0,
            "heartbeat_interval": 10.0, "version": "0"
        }))
        .expect("a heartbeat");
        assert_eq!(Heartbeat::stale_limit(10.0), 30.0);
        assert!(!hb.is_stale(1030.0), "at the limit");
        assert!(hb.is_stale(1030.5));
        assert!(!hb.is_stale(900.0), "a clock behind its writer's");
    }
}
