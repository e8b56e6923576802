//! Tasks in, results out: the old guide's tests, retries, agent errors, output limits.

use std::fs;

use crate::support::util::*;

#[test]
fn old_guide_integration_test_heredoc_in_place() {
    let root = Root::new();
    let mut w = Worker::start(&root, "marie", &[]);
    // The old guide wrote the file in place with a heredoc: open, write, close.
    let q = root.queue("marie");
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "cat > {}/test-001.json << 'EOF'\n{{\"task_id\": \"test-001\", \"description\": \"Echo 'Hello'\", \"worker\": \"marie\"}}\nEOF",
            q.display()
        ))
        .status()
        .expect("sh");
    let r = root.wait_result("marie", "test-001");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["output"]["result"], "Echo 'Hello'");
    // The agent's session is the one the worker named (--session-id).
    assert_eq!(r["agent"]["session_id"], r["runs"][0]["session_id"], "{r}");
    assert_eq!(r["attempts"], 1);
    assert!(root.path().join("triggers/marie/test-001.json").exists(), "claim receipt");
    wait_for("empty queue and in-flight folders", || {
        (names(&q).is_empty() && names(&root.inflight("marie")).is_empty()).then_some(())
    });
    assert!(w.stop().success());
}

#[test]
fn old_guide_load_test_100_tasks() {
    let root = Root::new();
    let mut w = Worker::start(&root, "marie", &[("MAX_CONCURRENT_TASKS", "4")]);
    for i in 0..100 {
        root.submit("marie", &format!("load-{i:03}"), &format!("load task {i}"));
    }
    wait_for("100 results", || (root.results("marie").len() == 100).then_some(()));
    for i in 0..100 {
        let r = root.result("marie", &format!("load-{i:03}")).expect("result");
        assert_eq!(r["status"], "completed");
    }
    wait_for("empty queue and in-flight folders", || {
        (names(&root.queue("marie")).is_empty() && names(&root.inflight("marie")).is_empty()).then_some(())
    });
    let hb = root.wait_heartbeat("marie", "idle heartbeat with 100 processed", |h| h["processed"] == 100);
    assert_eq!(hb["failed"], 0);
    assert!(w.stop().success());
}

#[test]
fn metadata_unknown_fields_and_environment_reach_the_agent() {
    let root = Root::new();
    fs::create_dir_all(root.path().join("prompts")).expect("prompts");
    fs::write(root.path().join("prompts/envw.md"), "You are envw.").expect("prompt");
    let _w = Worker::start(&root, "envw", &[]);
    root.submit_json(
        "envw",
        "e1",
        &serde_json::json!({"description": "env", "metadata": {"batch": "b1"}, "priority": 5}),
    );
    let r = root.wait_result("envw", "e1");
    assert_eq!(r["metadata"], serde_json::json!({"batch": "b1"}));
    let out = r["output"].as_str().expect("text output");
    assert!(out.contains("WATCHER_TASK_ID=e1\n"), "{out}");
    assert!(out.contains("WATCHER_WORKER=envw\n"), "{out}");
    assert!(out.contains("WATCHER_ATTEMPT=1\n"), "{out}");
    assert!(out.contains("WATCHER_TASK_FILE="), "{out}");
    assert!(!out.contains("NOTIFY_SOCKET"), "the daemon's NOTIFY_SOCKET leaked: {out}");
    assert!(out.contains("ARGS=-p --output-format json --append-system-prompt You are envw."), "{out}");
    let pid = out.lines().find_map(|l| l.strip_prefix("PID=")).expect("pid");
    let pgid = out.lines().find_map(|l| l.strip_prefix("PGID=")).expect("pgid");
    assert_eq!(pid, pgid, "the agent runs in its own process group");
}

#[test]
fn failing_agent_is_retried_then_dead_lettered() {
    let root = Root::new();
    let _w = Worker::start(
        &root,
        "marie",
        // The same failure every time: without REPEATED_FAILURE_LIMIT=0 it would stop after two.
        &[
            ("MAX_RETRIES", "3"),
            ("INITIAL_RETRY_DELAY", "0.05"),
            ("RETRY_BACKOFF", "1.5"),
            ("REPEATED_FAILURE_LIMIT", "0"),
        ],
    );
    root.submit("marie", "bad-1", "fail 3");
    let r = root.wait_result("marie", "bad-1");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["reason"], "exit_code");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["attempts"], 4, "1 + MAX_RETRIES attempts");
    assert!(r["stderr_tail"].as_str().expect("stderr").contains("failing as asked"));
    let dlq = wait_for("the dead letter", || root.dlq("marie").into_iter().next());
    assert_eq!(dlq["task_id"], "bad-1");
    assert_eq!(dlq["reason"], "exit_code");
    assert_eq!(dlq["attempts"], 4);
    assert_eq!(dlq["history"].as_array().expect("history").len(), 4);
    assert_eq!(dlq["task"]["description"], "fail 3");
    wait_for("an empty in-flight folder", || names(&root.inflight("marie")).is_empty().then_some(()));
}

#[test]
fn task_max_retries_overrides_and_fail_once_then_succeeds() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "0"), ("INITIAL_RETRY_DELAY", "0.05")]);
    root.submit_json("marie", "once", &serde_json::json!({"description": "fail-once", "max_retries": 1}));
    let r = root.wait_result("marie", "once");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["attempts"], 2);
    let hb = root.wait_heartbeat("marie", "a retry counted", |h| h["processed"] == 1);
    assert_eq!(hb["retried"], 1);
    assert!(root.dlq("marie").is_empty());
}

#[test]
fn agent_error_is_a_failure() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "0")]);
    root.submit("marie", "ae", "agent-error");
    let r = root.wait_result("marie", "ae");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["reason"], "agent_error");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["agent"]["is_error"], true);
}

#[test]
fn fifty_megabytes_of_stdout_are_capped() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[]);
    root.submit("marie", "big", "big 50000000");
    let r = root.wait_result("marie", "big");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["output_truncated"], true);
    assert_eq!(r["output_bytes"], 50_000_000);
    assert_eq!(r["output"].as_str().expect("text").len(), 1 << 20);
}

#[test]
fn agent_that_exits_without_reading_stdin() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[]);
    let long = format!("no-stdin\n{}", "x".repeat(900_000));
    root.submit("marie", "nostdin", &long);
    let r = root.wait_result("marie", "nostdin");
    assert_eq!(r["status"], "completed", "{r}");
    root.submit("marie", "after", "still alive");
    assert_eq!(root.wait_result("marie", "after")["status"], "completed");
}

#[test]
fn agent_gone_after_start_is_a_spawn_error() {
    let root = Root::new();
    // The preflight checks the agent at start-up; one removed later fails each spawn.
    let agent = root.path().join("agent");
    std::fs::copy(STAND_IN, &agent).expect("copy");
    let agent_s = agent.display().to_string();
    let _w = Worker::start(&root, "marie", &[("CLAUDE_COMMAND", &agent_s), ("MAX_RETRIES", "0")]);
    std::fs::remove_file(&agent).expect("rm");
    root.submit("marie", "nope", "hello");
    let r = root.wait_result("marie", "nope");
    assert_eq!(r["reason"], "spawn_error");
    assert!(r["message"].as_str().expect("message").contains(&agent_s), "{r}");
}
