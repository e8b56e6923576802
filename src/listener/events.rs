//! The events written to `triggers/orchestrator/` for the orchestrator: one JSON file each,
//! written durably (temp file, sync, rename, folder sync), so a reader never sees half of one.
//!
//! A name sorts by the time of what it reports and is unique:
//! `20261128T104512.123456789Z-task_completed-marie-3f9a1c2e5d6b7a89.json` — the time (UTC,
//! fixed width), the event, the worker (when there is one) and a hash of what the event is
//! about. The name is a function of its facts (the result file's mtime, the heartbeat's
//! timestamp, …), never of when the listener wrote it: if a crash comes between the event's
//! rename and the state's, the next start writes the same event under the same name again
//! instead of a second one. Every event carries its name's stem as `id`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::format::fnv::fnv1a;
use crate::format::records::{CANCELLED, COMPLETED};
use crate::format::summary::Summary;
use crate::sys::clock;

pub const TASK_COMPLETED: &str = "task_completed";
pub const TASK_FAILED: &str = "task_failed";
pub const TASK_CANCELLED: &str = "task_cancelled";
pub const WORKER_UNHEALTHY: &str = "worker_unhealthy";
pub const WORKER_RECOVERED: &str = "worker_recovered";
pub const BATCH_COMPLETED: &str = "batch_completed";
/// Every kind of event, for the metrics.
pub const KINDS: &[&str] =
    &[TASK_COMPLETED, TASK_FAILED, TASK_CANCELLED, WORKER_UNHEALTHY, WORKER_RECOVERED, BATCH_COMPLETED];

/// One event: its file name, and the JSON written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// When what it reports happened (RFC 3339, UTC), the time in its name.
    pub time: String,
    /// When the listener wrote it.
    pub emitted_at: String,
    #[serde(flatten)]
    pub detail: Map<String, Value>,
}

impl Event {
    /// An event of `kind` about `worker` at `at`; `identity` makes its name unique.
    pub fn new(kind: &'static str, worker: Option<&str>, at: SystemTime, identity: &str) -> Event {
        let id = stem(kind, worker, at, identity);
        Event {
            id,
            event: kind,
            worker: worker.map(str::to_string),
            task_id: None,
            time: clock::rfc3339(at),
            emitted_at: clock::rfc3339_now(),
            detail: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Event {
        self.detail.insert(key.to_string(), value);
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// `20261128T104512.123456789Z`: RFC 3339 in nanoseconds without its separators.
fn compact_time(at: SystemTime) -> String {
    humantime::format_rfc3339_nanos(at).to_string().replace(['-', ':'], "")
}

fn stem(kind: &str, worker: Option<&str>, at: SystemTime, identity: &str) -> String {
    let hash = fnv1a(&[kind, worker.unwrap_or(""), identity]);
    match worker {
        Some(w) => format!("{}-{kind}-{w}-{hash:016x}", compact_time(at)),
        None => format!("{}-{kind}-{hash:016x}", compact_time(at)),
    }
}

/// The time `ns` since the epoch (a file's mtime).
pub fn time_of_ns(ns: i64) -> SystemTime {
    match u64::try_from(ns) {
        Ok(n) => UNIX_EPOCH + Duration::from_nanos(n),
        Err(_) => UNIX_EPOCH,
    }
}

/// `task_completed`, `task_failed` or `task_cancelled` for a result of `worker`, at the result
/// file's mtime.
pub fn task(worker: &str, s: &Summary, mtime_ns: i64, result_path: &str) -> Event {
    let kind = match s.status {
        COMPLETED => TASK_COMPLETED,
        CANCELLED => TASK_CANCELLED,
        _ => TASK_FAILED,
    };
    let mut e = Event::new(kind, Some(worker), time_of_ns(mtime_ns), &format!("{}\0{mtime_ns}", s.task_id));
    e.task_id = Some(s.task_id.clone());
    let mut e = e
        .with("status", json!(s.status))
        .with("reason", json!(s.reason))
        .with("exit_code", json!(s.exit_code))
        .with("attempts", json!(s.attempts))
        .with("duration_seconds", json!(s.duration_seconds))
        .with("started_at", json!(s.started_at))
        .with("finished_at", json!(s.finished_at))
        .with("result", json!(result_path));
    if let Some((batch, _)) = &s.batch {
        e = e.with("batch", json!(batch));
    }
    if !s.metadata.is_null() {
        e = e.with("metadata", s.metadata.clone());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_are_stable() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_795_000_000_123_456_789);
        let a = Event::new(WORKER_UNHEALTHY, Some("marie"), t, "x");
        assert_eq!(&a.id[..26], "20261118T110640.123456789Z");
        assert!(a.id.starts_with("20261118T110640.123456789Z-worker_unhealthy-marie-"), "{}", a.id);
        assert_eq!(a.id, Event::new(WORKER_UNHEALTHY, Some("marie"), t, "x").id, "same facts, same name");
        assert_ne!(a.id, Event::new(WORKER_UNHEALTHY, Some("marie"), t, "y").id);
        let later = Event::new(BATCH_COMPLETED, None, t + Duration::from_nanos(1), "b");
        assert!(later.id > a.id);
        assert_eq!(a.time, "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn a_cancelled_result_is_announced_as_task_cancelled() {
        let text = r#"{"task_id":"t1","status":"cancelled","message":"cancelled by root@h"}"#;
        let crate::format::summary::ResultReading::Result(s) =
            crate::format::summary::read(text.as_bytes(), text.len() as u64, "t1")
        else {
            panic!("not read")
        };
        let e = task("marie", &s, 1_000, "results/marie/t1.json");
        assert_eq!((e.event, e.task_id.as_deref()), (TASK_CANCELLED, Some("t1")));
        assert!(e.id.contains("-task_cancelled-marie-"), "{}", e.id);
        assert_eq!(e.detail["status"], "cancelled");
    }

    #[test]
    fn event_json_has_its_fields_flat() {
        let e = Event::new(BATCH_COMPLETED, None, UNIX_EPOCH, "b1").with("batch", json!("b1"));
        let v: Value = serde_json::from_slice(&e.to_bytes()).expect("json");
        assert_eq!(v["event"], "batch_completed");
        assert_eq!(v["batch"], "b1");
        assert_eq!(v["id"], e.id);
        assert!(v.get("worker").is_none() && v.get("task_id").is_none());
    }
}
