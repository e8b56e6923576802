//! Failed tasks, their dead letters, and `dlq retry` running them again.

use std::fs;

use serde_json::json;

use crate::support::ctl::*;
use crate::support::util::*;

fn failed_then_listed(root: &Root, id: &str, description: &str) {
    let p = patience();
    let r =
        ctl(root, &["submit", "marie", description, "--id", id, "--wait", "--wait-timeout", &p, "--json"]);
    let result = r.expect(1).json();
    assert_eq!((result["status"].as_str(), result["reason"].as_str()), (Some("failed"), Some("exit_code")));
    let listed = wait_for("the dead letter", || {
        let list = ctl(root, &["dlq", "list", "marie", "--json"]).expect(0).json();
        list.as_array().filter(|l| !l.is_empty()).cloned()
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0]["name"].as_str(), listed[0]["task_id"].as_str()), (Some(id), Some(id)));
    ctl(root, &["result", "marie", id]).expect(1);
}

#[test]
fn a_failed_task_is_listed_and_a_retry_runs_it_again() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "0")]);
    failed_then_listed(&root, "once", "fail-once");
    let r = ctl(&root, &["dlq", "list", "marie"]).expect(0);
    let row = r.stdout.lines().nth(1).expect("a row");
    assert!(row.starts_with("once  ") && row.contains("exit_code"), "{}", r.stdout);
    let r = ctl(&root, &["dlq", "show", "marie", "once"]).expect(0);
    assert!(r.stdout.contains("failures:\nATTEMPT  REASON"), "{}", r.stdout);

    let r = ctl(&root, &["dlq", "retry", "marie", "once"]).expect(0);
    assert!(r.stdout.contains("queued again"), "{r:?}");
    let result = wait_for("the retry's result", || {
        root.result("marie", "once").filter(|r| r["status"] == "completed")
    });
    assert_eq!(result["attempts"], 1, "a fresh attempt count: {result}");
    ctl(&root, &["result", "marie", "once"]).expect(0);
    assert_eq!(ctl(&root, &["dlq", "list", "marie", "--json"]).expect(0).json(), json!([]));
    // What the retry replaced is kept aside, out of the workers' and the listener's way.
    assert_eq!(names(&root.path().join("results/marie/.retried")).len(), 1);
    assert_eq!(names(&root.path().join("dlq/marie/.retried")).len(), 1);
}

#[test]
fn a_retried_task_that_fails_again_keeps_its_history() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "0")]);
    failed_then_listed(&root, "always", "fail 4");
    ctl(&root, &["dlq", "retry", "marie", "--all"]).expect(0);
    let letter = wait_for("the second dead letter", || {
        let l = ctl(&root, &["dlq", "show", "marie", "always", "--json"]);
        (l.code == 0).then(|| l.json())
    });
    assert_eq!(letter["attempts"], 1, "{letter}");
    assert_eq!(
        letter["history"].as_array().expect("history").len(),
        2,
        "the first failure is kept: {letter}"
    );
}

/// A dead letter and its failed result as the worker writes them, with no worker running.
fn dead_letter_on_disk(root: &Root, id: &str) {
    for dir in ["dlq/marie", "results/marie", "tasks/marie/.inflight"] {
        fs::create_dir_all(root.path().join(dir)).expect("mkdir");
    }
    let at = "2026-01-01T00:00:00.000Z";
    let history = json!([{"attempt": 1, "reason": "exit_code", "message": "boom", "exit_code": 1}]);
    let letter = json!({"task_id": id, "worker": "marie", "reason": "exit_code", "message": "gave up",
        "dead_lettered_at": at, "attempts": 1, "history": history, "source_file": format!("{id}.json"),
        "task": {"task_id": id, "description": "hello", "max_retries": 0}, "hostname": "h"});
    fs::write(root.path().join(format!("dlq/marie/{id}.json")), letter.to_string()).expect("w");
    let result = json!({"task_id": id, "worker": "marie", "status": "failed", "reason": "exit_code",
        "attempts": 1, "finished_at": at});
    fs::write(root.path().join(format!("results/marie/{id}.json")), result.to_string()).expect("w");
}

#[test]
fn an_interrupted_retry_is_finished_by_running_it_again() {
    let root = Root::new();
    dead_letter_on_disk(&root, "t1");
    // Interrupted after moving the result aside: the retry queues it.
    fs::remove_file(root.path().join("results/marie/t1.json")).expect("rm");
    ctl(&root, &["dlq", "retry", "marie", "t1"]).expect(0);
    let task = read_json(&root.queue("marie").join("t1.json")).expect("queued");
    assert_eq!(task["description"], "hello");
    assert_eq!(task["max_retries"], 0);
    assert_eq!(task["_watcher"]["attempts"], 0);
    assert_eq!(task["_watcher"]["history"][0]["message"], "boom");
    assert!(task["_watcher"].get("retry_at").is_none(), "{task}");
    ctl(&root, &["dlq", "show", "marie", "t1"]).expect(66);
    // Interrupted after queueing: the dead letter is still listed; a retry only archives it.
    dead_letter_on_disk(&root, "t2");
    fs::remove_file(root.path().join("results/marie/t2.json")).expect("rm");
    fs::write(root.queue("marie").join("t2.json"), r#"{"description":"hello"}"#).expect("w");
    let r = ctl(&root, &["dlq", "retry", "marie", "t2"]).expect(0);
    assert!(r.stdout.contains("already queued again"), "{r:?}");
    assert_eq!(ctl(&root, &["dlq", "list", "marie", "--json"]).expect(0).json(), json!([]));
    // Interrupted, and the task already ran again: a newer result; nothing is queued.
    dead_letter_on_disk(&root, "t3");
    let newer = json!({"task_id": "t3", "status": "completed", "finished_at": "2026-01-02T00:00:00.000Z"});
    fs::write(root.path().join("results/marie/t3.json"), newer.to_string()).expect("w");
    let r = ctl(&root, &["dlq", "retry", "marie", "t3"]).expect(0);
    assert!(r.stdout.contains("already ran again"), "{r:?}");
    assert!(!root.queue("marie").join("t3.json").exists());
    assert_eq!(root.result("marie", "t3").expect("kept")["status"], "completed");
}

#[test]
fn invalid_dead_letters_are_not_retried_and_purge_needs_a_name() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[]);
    fs::write(root.queue("marie").join("junk.json"), "not json").expect("w");
    root.submit_json("marie", "nodesc", &json!({"task_id": "nodesc"}));
    wait_for("two dead letters", || (root.dlq("marie").len() == 2).then_some(()));
    let r = ctl(&root, &["dlq", "retry", "marie", "nodesc"]).expect(65);
    assert!(r.stderr.contains("rejected as invalid"), "{r:?}");
    ctl(&root, &["dlq", "retry", "marie", "--all"]).expect(65);
    ctl(&root, &["dlq", "purge", "marie"]).expect(2);
    ctl(&root, &["dlq", "purge", "marie", "nodesc"]).expect(0);
    assert_eq!(root.dlq("marie").len(), 1);
    let rejected = root.queue("marie").join(".rejected");
    assert_eq!(names(&rejected), vec!["junk.orig"], "the non-JSON file is kept beside its dead letter");
    ctl(&root, &["dlq", "purge", "marie", "--all"]).expect(0);
    assert!(root.dlq("marie").is_empty());
    assert!(names(&rejected).is_empty(), "its original went with it");
}
