//! Agent-aware failure handling: each class of a recorded Claude result handled as it should
//! be; rate limits and outages hold the worker without charging the task (more in outage.rs); runaway
//! guards; the spend cap; the start-up preflight.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::util::*;

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn started_at(r: &serde_json::Value) -> f64 {
    let t = humantime::parse_rfc3339(r["started_at"].as_str().expect("started_at")).expect("time");
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[test]
fn permanent_failures_are_not_retried() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "3"), ("INITIAL_RETRY_DELAY", "0")]);
    for (id, fixture, reason) in [
        ("turns", "2.0-error-max-turns.json", "error_max_turns"),
        ("budget", "2.0-error-max-budget.json", "error_max_budget_usd"),
        ("schema", "2.0-error-structured-output.json", "error_max_structured_output_retries"),
        ("denied", "2.0-permission-denied.json", "permission_denied"),
    ] {
        root.submit("marie", id, &format!("replay {fixture} 1"));
        let r = root.wait_result("marie", id);
        assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("failed"), Some(reason)), "{r}");
        assert_eq!(r["attempts"], 1, "no retry: {r}");
    }
    wait_for("four dead letters", || (root.dlq("marie").len() == 4).then_some(()));
}

#[test]
fn an_overload_is_held_and_not_charged() {
    let root = Root::new();
    let _w = Worker::start(
        &root,
        "marie",
        &[("MAX_RETRIES", "2"), ("INITIAL_RETRY_DELAY", "0"), ("CIRCUIT_BREAKER_TIMEOUT", "0.1")],
    );
    root.submit("marie", "t1", "replay-once 2.0-overloaded.json");
    let r = root.wait_result("marie", "t1");
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(1)), "{r}");
}

#[test]
fn rate_limit_pauses_the_worker_until_the_reset_without_charging() {
    let root = Root::new();
    let log = root.path().join("starts.log");
    let log_s = log.display().to_string();
    let _w = Worker::start(
        &root,
        "marie",
        &[
            ("MAX_RETRIES", "0"),
            ("FAKE_RESET_IN", "3"),
            ("FAKE_START_LOG", &log_s),
            ("HEARTBEAT_INTERVAL", "0.2"),
        ],
    );
    root.submit("marie", "limited", "replay-once 1.0-usage-limit.json 1");
    let hb = root.wait_heartbeat("marie", "the worker rate limited", |h| h["status"] == "rate_limited");
    let until = hb["paused_until"].as_f64().expect("paused_until");
    assert!(until > epoch_now(), "the pause lies ahead: {hb}");
    root.submit("marie", "queued", "hello");
    let r = root.wait_result("marie", "limited");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["attempts"], 1, "the rate-limited run was not charged: {r}");
    let q = root.wait_result("marie", "queued");
    let starts = std::fs::read_to_string(&log).expect("log");
    let mut starts: Vec<&str> = starts.lines().collect();
    // After the pause the rerun and the queued task may start in either order.
    starts[1..].sort_unstable();
    assert_eq!(starts, ["limited 1", "limited 1", "queued 1"], "uncharged: the rerun is attempt 1 again");
    // Nothing started between the limit and the reset (the reset was 3 s after the limit).
    assert!(
        started_at(&q) >= until - 0.05,
        "queued task started at {} before the reset {until}",
        started_at(&q)
    );
    assert!(root.dlq("marie").is_empty());
    root.wait_heartbeat("marie", "running again", |h| {
        h["status"] == "idle" && h.get("paused_until").is_none()
    });
}

#[test]
fn credential_fault_opens_the_breaker_and_holds_the_queue() {
    let root = Root::new();
    let w = Worker::start(
        &root,
        "marie",
        &[("MAX_RETRIES", "3"), ("CIRCUIT_BREAKER_TIMEOUT", "60"), ("CIRCUIT_BREAKER_THRESHOLD", "5")],
    );
    root.submit("marie", "auth", "replay 2.0-not-logged-in.json 1");
    let hb =
        root.wait_heartbeat("marie", "the breaker open for credentials", |h| h["circuit_state"] == "open");
    assert_eq!(hb["circuit_reason"], "credential", "{hb}");
    root.submit("marie", "held", "hello");
    // Held, not failed: no result, no dead letter, and the task stays queued while open.
    wait_for("the loud journal-style entry", || {
        w.log_text().contains("unavailable (credential)").then_some(())
    });
    assert_eq!(w.log_text().matches("the agent's service is unavailable (credential)").count(), 1);
    assert!(root.result("marie", "auth").is_none() && root.result("marie", "held").is_none());
    assert!(root.dlq("marie").is_empty());
    let hb = root.wait_heartbeat("marie", "the held task counted as queued", |h| h["queue_size"] == 1);
    assert_eq!(hb["status"], "circuit_open");
    let task: serde_json::Value =
        read_json(&root.inflight("marie").join("auth.json")).expect("the faulted task waits in flight");
    assert_eq!(task["_watcher"]["attempts"], 0, "not charged: {task}");
    assert_eq!(task["_watcher"]["uncharged"], 1, "{task}");
}

#[test]
fn the_same_failure_twice_stops_early() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "5"), ("INITIAL_RETRY_DELAY", "0")]);
    root.submit("marie", "same", "fail 3");
    let r = root.wait_result("marie", "same");
    assert_eq!((r["reason"].as_str(), r["attempts"].as_u64()), (Some("repeated_failure"), Some(2)), "{r}");
}

#[test]
fn total_runs_are_capped() {
    let root = Root::new();
    let _w = Worker::start(
        &root,
        "marie",
        &[
            ("MAX_RETRIES", "10"),
            ("INITIAL_RETRY_DELAY", "0"),
            ("MAX_TASK_RUNS", "3"),
            ("REPEATED_FAILURE_LIMIT", "0"),
        ],
    );
    root.submit("marie", "many", "fail 3");
    let r = root.wait_result("marie", "many");
    assert_eq!((r["reason"].as_str(), r["attempts"].as_u64()), (Some("attempt_limit"), Some(3)), "{r}");
}

#[test]
fn spend_cap_pauses_the_worker() {
    let root = Root::new();
    // Each stand-in run reports 0.0012 USD: the second one reaches the cap.
    let _w = Worker::start(&root, "marie", &[("WORKER_BUDGET_USD", "0.002"), ("MAX_CONCURRENT_TASKS", "1")]);
    root.submit("marie", "s1", "hello");
    root.wait_result("marie", "s1");
    root.submit("marie", "s2", "hello");
    root.wait_result("marie", "s2");
    let hb = root.wait_heartbeat("marie", "paused by the spend cap", |h| h["status"] == "budget_exhausted");
    assert!(hb["paused_until"].as_f64().expect("until") > epoch_now() + 3000.0, "{hb}");
    root.submit("marie", "s3", "hello");
    root.wait_heartbeat("marie", "s3 held in the queue", |h| h["queue_size"] == 1);
    assert!(root.result("marie", "s3").is_none());
    assert!(std::fs::read(root.queue("marie").join(".spend.json")).is_ok(), "the ledger is saved");
}

#[test]
fn task_limits_reach_the_agent() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("CLAUDE_ARGS", "")]);
    root.submit_json(
        "marie",
        "lim",
        &serde_json::json!({"description": "env", "max_turns": 5, "max_budget_usd": 0.5}),
    );
    let out = root.wait_result("marie", "lim")["output"].as_str().expect("text").to_string();
    assert!(out.contains("ARGS=--max-turns 5 --max-budget-usd 0.5 --session-id "), "{out}");
}

#[test]
fn retries_and_new_tasks_alternate() {
    let root = Root::new();
    let log = root.path().join("starts.log");
    let log_s = log.display().to_string();
    let _w = Worker::start(
        &root,
        "marie",
        &[
            ("MAX_CONCURRENT_TASKS", "1"),
            ("INITIAL_RETRY_DELAY", "0"),
            ("MAX_RETRIES", "3"),
            ("REPEATED_FAILURE_LIMIT", "0"),
            ("FAKE_START_LOG", &log_s),
            ("CIRCUIT_BREAKER_THRESHOLD", "100"),
        ],
    );
    // A first slow task lets the others pile up behind it.
    root.submit("marie", "a-first", "sleep 1");
    wait_for("the first task running", || std::fs::read_to_string(&log).ok().filter(|t| !t.is_empty()));
    root.submit("marie", "b-flaky", "fail-times 3");
    for i in 0..4 {
        root.submit("marie", &format!("c-new-{i}"), "hello");
    }
    wait_for("all done", || (root.results("marie").len() == 6).then_some(()));
    let starts: Vec<String> =
        std::fs::read_to_string(&log).expect("log").lines().map(str::to_string).collect();
    // b-flaky's first run is a new task; its retries (due at once) then alternate with the
    // new tasks: never two retries in a row while new tasks wait.
    let order: Vec<&str> = starts.iter().map(|l| l.split(' ').next().unwrap_or("")).collect();
    let first_b = order.iter().position(|t| *t == "b-flaky").expect("b ran");
    let after = &order[first_b + 1..first_b + 7];
    assert_eq!(after, ["b-flaky", "c-new-0", "b-flaky", "c-new-1", "b-flaky", "c-new-2"], "{order:?}");
}

#[test]
fn preflight_refuses_a_missing_agent_with_exit_78() {
    let root = Root::new();
    let out =
        command(&root, "marie", &[("CLAUDE_COMMAND", "claude-not-installed"), ("PATH", "/usr/bin:/bin")])
            .output()
            .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CLAUDE_COMMAND: \"claude-not-installed\" was not found in PATH=/usr/bin:/bin"),
        "{err}"
    );
}

#[test]
fn preflight_canary_run() {
    let root = Root::new();
    let out = command(&root, "marie", &[("CLAUDE_COMMAND", "/bin/false"), ("AGENT_PREFLIGHT", "true")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENT_PREFLIGHT: the canary run failed"));
    assert!(root.dlq("marie").is_empty());
    let w = Worker::start(&root, "marie", &[("AGENT_PREFLIGHT", "true")]);
    assert!(w.log_text().contains("preflight: the agent answered"));
}
