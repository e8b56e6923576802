//! Outages of the agent's service hold the queue, however long they last: no run is charged
//! to any task; one trial per breaker timeout, backing off; one journal entry at the start
//! and one at the end; every held task runs after. Recordings of the real CLI play the
//! outage (tests/fixtures/claude/VERSION/). Also: the words of the agent's tools classify
//! nothing, a rate-limit reset in the past does not burn the queue, and an error result
//! past MAX_OUTPUT_BYTES is still an error.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::util::*;

const OUTAGE_STARTED: &str = "7c3e9a51d2b84f06a1e5c2d9b8f04e17";
const OUTAGE_ENDED: &str = "c09870e5d51b41b4bc973fc3e4714453";
const WORKER_PAUSED: &str = "3f6d2b8e91c04a7d8e5b1f0c6a9d2e44";

/// The worker's log lines (LOG_FORMAT=json).
fn log_lines(w: &Worker) -> Vec<Value> {
    w.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn with_id<'a>(lines: &'a [Value], id: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message_id"] == id).collect()
}

/// Starts an outage: every agent run replays `fixture` (exit 1) while the file exists.
fn outage_file(root: &Root, fixture: &str) -> PathBuf {
    let f = root.path().join("outage");
    std::fs::write(&f, format!("{fixture} 1")).expect("outage file");
    f
}

/// The uncharged runs of a held task, read from its saved state.
fn uncharged(root: &Root, id: &str) -> u64 {
    read_json(&root.inflight("marie").join(format!("{id}.json")))
        .and_then(|t| t["_watcher"]["uncharged"].as_u64())
        .unwrap_or(0)
}

fn wait_uncharged(root: &Root, id: &str, n: u64) {
    wait_for(&format!("{n} uncharged runs of {id}"), || (uncharged(root, id) >= n).then_some(()));
}

#[test]
fn a_credential_outage_holds_every_task_past_the_run_and_time_limits() {
    let root = Root::new();
    let outage = outage_file(&root, "2.1.197/not-logged-in.json");
    let outage_s = outage.display().to_string();
    let w = Worker::start(
        &root,
        "marie",
        &[
            ("FAKE_OUTAGE", &outage_s),
            ("MAX_CONCURRENT_TASKS", "1"),
            ("CIRCUIT_BREAKER_TIMEOUT", "0.1"),
            ("CIRCUIT_BREAKER_MAX_TIMEOUT", "0.4"),
            ("MAX_TASK_RUNS", "3"),
            ("MAX_TASK_WALL_TIME", "1"),
            ("INITIAL_RETRY_DELAY", "0"),
        ],
    );
    // The first charged run of `held` fails: it must be retried, not found out of time.
    root.submit("marie", "held", "fail-once");
    // Past MAX_TASK_RUNS, and past MAX_TASK_WALL_TIME of trials (0.1 + 0.2 + 0.4 + 0.4 + 0.4 s).
    wait_uncharged(&root, "held", 6);
    for i in 0..4 {
        root.submit("marie", &format!("queued-{i}"), "hello");
    }
    let hb = root.wait_heartbeat("marie", "the queue held", |h| h["queue_size"].as_u64() >= Some(1));
    assert_eq!(hb["circuit_reason"], "credential", "{hb}");
    assert!(root.dlq("marie").is_empty(), "nothing dead-lettered: {:?}", root.dlq("marie"));
    assert!(root.results("marie").is_empty(), "nothing failed: {:?}", root.results("marie"));
    let task = read_json(&root.inflight("marie").join("held.json")).expect("held in flight");
    assert_eq!(task["_watcher"]["attempts"], 0, "{task}");

    std::fs::remove_file(&outage).expect("end the outage");
    let r = root.wait_result("marie", "held");
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(2)), "{r}");
    for i in 0..4 {
        let q = root.wait_result("marie", &format!("queued-{i}"));
        assert_eq!((q["status"].as_str(), q["attempts"].as_u64()), (Some("completed"), Some(1)), "{q}");
    }
    assert!(root.dlq("marie").is_empty());
    root.wait_heartbeat("marie", "the breaker closed", |h| h["circuit_state"] == "closed");

    // One entry at the start naming the cause and what to do, one at the end; no error per trial.
    let lines = log_lines(&w);
    let started = with_id(&lines, OUTAGE_STARTED);
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["cause"], "credential");
    let text = started[0]["message"].as_str().unwrap_or("");
    assert!(text.contains("claude auth login") && text.contains("ANTHROPIC_API_KEY"), "{text}");
    assert_eq!(with_id(&lines, OUTAGE_ENDED).len(), 1);
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "one error entry for the whole outage: {errors:?}");
    assert!(!w.log_text().contains("circuit breaker opened"), "no breaker entry per trial");
}

/// An outage played by `fixture` (run with CLAUDE_ARGS `args`) holds two tasks, with the
/// heartbeat naming `cause`; when it ends both complete at their first charged attempt.
fn outage_holds(fixture: &str, args: &str, cause: &str) {
    let root = Root::new();
    let outage = outage_file(&root, fixture);
    let outage_s = outage.display().to_string();
    let w = Worker::start(
        &root,
        "marie",
        &[
            ("FAKE_OUTAGE", &outage_s),
            ("CLAUDE_ARGS", args),
            ("MAX_CONCURRENT_TASKS", "1"),
            ("MAX_RETRIES", "1"),
            ("CIRCUIT_BREAKER_TIMEOUT", "0.1"),
            ("CIRCUIT_BREAKER_MAX_TIMEOUT", "0.2"),
        ],
    );
    root.submit("marie", "one", "hello");
    root.submit("marie", "two", "hello");
    wait_uncharged(&root, "one", 4);
    let hb = root.wait_heartbeat("marie", "the breaker held", |h| h["circuit_state"] != "closed");
    assert_eq!(hb["circuit_reason"], cause, "{hb}");
    assert!(root.dlq("marie").is_empty() && root.results("marie").is_empty(), "{:?}", root.dlq("marie"));
    std::fs::remove_file(&outage).expect("end the outage");
    for id in ["one", "two"] {
        let r = root.wait_result("marie", id);
        assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(1)), "{r}");
    }
    let lines = log_lines(&w);
    let started = with_id(&lines, OUTAGE_STARTED);
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["cause"], cause);
    assert_eq!(with_id(&lines, OUTAGE_ENDED).len(), 1);
}

#[test]
fn network_down_on_cli_2_1_197_is_an_outage() {
    outage_holds("2.1.197/connection-refused.json", "-p --output-format json", "network");
}

#[test]
fn network_down_on_cli_2_1_332_in_stream_json_is_an_outage() {
    outage_holds("2.1.332/unresolvable-host.ndjson", "-p --output-format stream-json --verbose", "network");
}

#[test]
fn an_overloaded_api_is_an_outage() {
    outage_holds("2.1.332/api-529.json", "-p --output-format json", "service");
}

#[test]
fn the_words_of_the_agents_tools_neither_pause_nor_open_the_breaker() {
    let root = Root::new();
    let w = Worker::start(
        &root,
        "marie",
        &[("MAX_RETRIES", "1"), ("INITIAL_RETRY_DELAY", "0"), ("RATE_LIMIT_PAUSE", "3600")],
    );
    root.submit("marie", "memory", "say-fail 1 fatal: memory limit reached");
    root.submit(
        "marie",
        "gh",
        "say-fail 1 You are not logged into any GitHub hosts. To log in, run: gh auth login",
    );
    for id in ["memory", "gh"] {
        let r = root.wait_result("marie", id);
        assert_eq!(r["status"], "failed", "{r}");
        assert!(matches!(r["reason"].as_str(), Some("exit_code" | "repeated_failure")), "{r}");
    }
    let lines = log_lines(&w);
    assert!(with_id(&lines, WORKER_PAUSED).is_empty() && with_id(&lines, OUTAGE_STARTED).is_empty());
}

#[test]
fn a_rate_limit_reset_in_the_past_pauses_for_rate_limit_pause() {
    for fixture in
        ["1.0-usage-limit.json", "2.0-rate-limit-resets-at.json", "2.0-rate-limit-resets-at-iso.json"]
    {
        let root = Root::new();
        let starts = root.path().join("starts.log");
        let starts_s = starts.display().to_string();
        let _w = Worker::start(
            &root,
            "marie",
            &[
                ("FAKE_RESET_IN", "-3600"),
                ("FAKE_START_LOG", &starts_s),
                ("RATE_LIMIT_PAUSE", "3600"),
                ("MAX_CONCURRENT_TASKS", "1"),
            ],
        );
        for i in 0..10 {
            root.submit("marie", &format!("t{i}"), &format!("replay {fixture} 1"));
        }
        let hb = root.wait_heartbeat("marie", "the worker rate limited", |h| h["status"] == "rate_limited");
        let until = hb["paused_until"].as_f64().expect("paused_until");
        let now = hb["timestamp"].as_f64().expect("timestamp");
        assert!(
            until >= now + 3500.0,
            "{fixture}: paused for RATE_LIMIT_PAUSE, not until the past reset: {hb}"
        );
        assert!(root.dlq("marie").is_empty(), "{fixture}: {:?}", root.dlq("marie"));
        let n = std::fs::read_to_string(&starts).expect("starts").lines().count();
        assert_eq!(n, 1, "{fixture}: one run, then the pause");
    }
}

fn error_past_the_cap(description: &str, args: &str) {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "0"), ("CLAUDE_ARGS", args)]);
    root.submit("marie", "big", description);
    let r = root.wait_result("marie", "big");
    assert_eq!(r["output_truncated"], true, "past MAX_OUTPUT_BYTES: {}", r["output_bytes"]);
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("failed"), Some("agent_error")),
        "{}",
        r["message"]
    );
    assert_eq!(r["agent"]["is_error"], true);
}

#[test]
fn a_2_mb_json_error_result_is_a_failure() {
    error_past_the_cap("big-error json 2000000", "-p --output-format json");
}

#[test]
fn stream_json_ending_in_an_error_result_past_the_cap_is_a_failure() {
    error_past_the_cap("big-error stream 2000000", "-p --output-format stream-json --verbose");
}
