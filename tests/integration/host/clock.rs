//! Steps of the wall clock (an NTP correction, a VM restored from a snapshot) must neither
//! hold a task back nor end it. A test cannot step the host's clock safely (and a time
//! namespace moves only CLOCK_MONOTONIC and CLOCK_BOOTTIME), so each test writes into
//! `.inflight/` the task state the daemon itself wrote before the step, whose wall times are
//! then off by the step, and starts the worker on it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::util::*;

const DAY: f64 = 86_400.0;

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64()
}

fn rfc3339(epoch: f64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs_f64(epoch);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A task waiting in flight for its retry, with the state the daemon saved after attempt 1
/// failed at `failed_at`, retry due at `retry_at` (both on the clock of then).
fn waiting_task(root: &Root, worker: &str, id: &str, description: &str, failed_at: f64, retry_at: f64) {
    let task = json!({
        "task_id": id,
        "description": description,
        "_watcher": {
            "attempts": 1,
            "reclaims": 0,
            "retry_at": retry_at,
            "first_started_at": rfc3339(failed_at - 1.0),
            "history": [{
                "attempt": 1, "reason": "exit_code", "message": "exit status 1", "exit_code": 1,
                "started_at": rfc3339(failed_at - 1.0), "finished_at": rfc3339(failed_at),
                "duration_seconds": 1.0, "stderr_tail": ""
            }]
        }
    });
    let inflight = root.inflight(worker);
    std::fs::create_dir_all(&inflight).expect("inflight");
    std::fs::write(inflight.join(format!("{id}.json")), task.to_string()).expect("task");
}

/// The clock stepped back a day after a retry was scheduled 2 s ahead: its `retry_at` now
/// lies a day and 2 s ahead. A wait read back from disk is bounded by MAX_RETRY_DELAY from
/// now, so the task runs within a second, not a day later.
#[test]
fn a_retry_time_a_day_ahead_waits_no_longer_than_max_retry_delay() {
    let root = Root::new();
    let t = now();
    waiting_task(&root, "marie", "stepped-back", "hello", t, t + DAY + 2.0);
    let _w = Worker::start(&root, "marie", &[("MAX_RETRY_DELAY", "1")]);
    let r = root.wait_result("marie", "stepped-back");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["attempts"], 2, "{r}");
}

/// The clock stepped forward a day after the first attempt failed: its `first_started_at`
/// now lies a day back. MAX_TASK_WALL_TIME counts the time a worker has held the task on the
/// monotonic clock, so the step does not end it (`time_limit`); its retry runs and succeeds.
#[test]
fn a_step_forward_does_not_end_a_retrying_task_on_its_time_limit() {
    let root = Root::new();
    let t = now() - DAY;
    // The stand-in fails its first run of this task (in this test), then succeeds.
    waiting_task(&root, "marie", "stepped-forward", "fail-once", t, t + 1.0);
    let env = [("MAX_TASK_WALL_TIME", "3600"), ("INITIAL_RETRY_DELAY", "0"), ("MAX_RETRIES", "3")];
    let _w = Worker::start(&root, "marie", &env);
    let r = root.wait_result("marie", "stepped-forward");
    assert_eq!(r["status"], "completed", "{r}");
    assert!(root.dlq("marie").is_empty(), "{:?}", root.dlq("marie"));
}

/// The time charged is saved with the task (`_watcher.charged_seconds`) and counts on after a
/// restart: a task saved as held for an hour ends on MAX_TASK_WALL_TIME=3600 at its next
/// failure, with reason `time_limit`.
#[test]
fn the_time_held_is_saved_and_ends_the_task_at_its_limit() {
    let root = Root::new();
    let mut w = Worker::start(&root, "marie", &[("INITIAL_RETRY_DELAY", "3600"), ("MAX_RETRIES", "3")]);
    root.submit("marie", "held", "fail 1");
    let saved = root.inflight("marie").join("held.json");
    wait_for("the failed attempt saved", || (read_json(&saved)?["_watcher"]["attempts"] == 1).then_some(()));
    assert!(w.stop().success());
    // Stopped while waiting for its retry: back in the queue, with the time held so far.
    let queued = root.queue("marie").join("held.json");
    let mut task = read_json(&queued).expect("re-queued task");
    let held = task["_watcher"]["charged_seconds"].as_f64().expect("charged_seconds");
    assert!(held > 0.0, "{task}");
    task["_watcher"]["charged_seconds"] = json!(3600.0);
    task["_watcher"]["retry_at"] = json!(now());
    std::fs::write(&queued, task.to_string()).expect("rewrite");
    let env = [
        ("MAX_TASK_WALL_TIME", "3600"),
        ("INITIAL_RETRY_DELAY", "0"),
        ("MAX_RETRIES", "3"),
        ("REPEATED_FAILURE_LIMIT", "0"),
    ];
    let _w = Worker::start(&root, "marie", &env);
    let r = root.wait_result("marie", "held");
    assert_eq!((&r["status"], &r["reason"]), (&json!("failed"), &json!("time_limit")), "{r}");
}
