//! Golden spool trees (tests/golden/README.md): for each scenario, the spool of
//! `tests/golden/NAME/in/` is given to a worker `marie` (and, for one, then to the listener);
//! once every task has ended the worker is stopped, and the tree it leaves must be
//! `tests/golden/NAME/expected/`, file by file, after normalization (support/golden.rs).
//! `UPDATE_GOLDEN=1 cargo test --test integration golden` rewrites expected/.

use std::path::Path;

use crate::support::golden::{self, GOLDEN};
use crate::support::util::*;

/// Retries come quickly; nothing else differs from the defaults.
const QUICK_RETRY: (&str, &str) = ("INITIAL_RETRY_DELAY", "0.1");

/// Runs scenario `name`: its spool in, `marie` with `env` until every task has ended (the
/// queue and .inflight/ empty), then stopped; then, if `listener`, the listener until it has
/// announced every result and the stopped worker; then the tree compared.
fn scenario(name: &str, env: &[(&str, &str)], listener: bool) {
    let root = Root::new();
    golden::copy_tree(&Path::new(GOLDEN).join(name).join("in"), root.path());
    let mut w = Worker::start(&root, "marie", env);
    wait_for("every task to end", || {
        (names(&root.queue("marie")).is_empty() && names(&root.inflight("marie")).is_empty()).then_some(())
    });
    assert!(w.stop().success(), "{}", w.log_text());
    if listener {
        run_listener(&root);
    }
    golden::check(name, root.path());
}

/// The listener over the finished spool: one event per result, and the stopped worker
/// announced; then stopped.
fn run_listener(root: &Root) {
    let mut l = Worker::spawn_command(root, "listener", listener_command(root, &[]));
    l.wait_notify("READY=1");
    let results = root.results("marie").len();
    root.wait_events("an event per result and the stopped worker announced", |e| {
        of_kind(e, "task_completed", None).len() + of_kind(e, "task_failed", None).len() == results
            && !of_kind(e, "worker_unhealthy", Some("marie")).is_empty()
    });
    assert!(l.stop().success(), "{}", l.log_text());
}

#[test]
fn golden_a_task_completes() {
    scenario("completed", &[], false);
}

/// Two tasks of one batch, one failing its first attempt; the listener then reports both,
/// the batch and the stopped worker.
#[test]
fn golden_a_task_fails_is_retried_and_completes() {
    scenario("retried", &[QUICK_RETRY], true);
}

#[test]
fn golden_a_task_exhausts_its_retries_and_is_dead_lettered() {
    scenario("dead_lettered", &[QUICK_RETRY], false);
}

/// A file that is not JSON, a task without a description, a task for another worker.
#[test]
fn golden_invalid_files_are_dead_lettered_invalid() {
    scenario("invalid", &[], false);
}

/// What a worker killed with -9 left in .inflight/: a task interrupted in its first attempt,
/// one in its second, and one whose result was written before the process died.
#[test]
fn golden_a_crash_is_recovered_on_restart() {
    scenario("crash_recovered", &[], false);
}

/// The normalizer replaces what changes from run to run and keeps everything else: a null
/// stays null, the root's path becomes `<root>`, an event loses the time in its name, and
/// what the harness or the listener keeps for itself is not part of the tree.
#[test]
fn golden_trees_are_normalized_and_nothing_else_is_touched() {
    let root = Root::new();
    let p = root.path();
    let write = |rel: &str, text: &str| {
        let path = p.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    let task_file = p.join("tasks/marie/.inflight/t.json").display().to_string();
    let receipt = serde_json::json!({"pid": 7, "claimed_at": "2026-01-01T00:00:00Z", "attempt": 2,
        "started_at": null, "task_file": task_file, "history": [{"duration_seconds": 1.5, "exit_code": 1}]});
    write("triggers/marie/t.json", &receipt.to_string());
    write(
        "triggers/orchestrator/20260101T000000.000000001Z-task_failed-marie-0123456789abcdef.json",
        r#"{"id": "20260101T000000.000000001Z-task_failed-marie-0123456789abcdef",
            "event": "task_failed", "worker": "marie", "task_id": "t", "batch": "b"}"#,
    );
    write("tasks/marie/.rejected/x.orig", "not JSON\n");
    for harness in ["marie-1.log", "notify-marie-1.sock", "stand-in-state/t.attempts", "listener/state.json"]
    {
        write(harness, "1");
    }
    let tree = golden::normalized_tree(p);
    let names: Vec<String> = tree.keys().map(|k| k.display().to_string()).collect();
    let event = "triggers/orchestrator/task_failed-marie-t.json";
    assert_eq!(names, ["tasks/marie/.rejected/x.orig", "triggers/marie/t.json", event]);
    let json = |rel: &str| match &tree[Path::new(rel)] {
        golden::Content::Json(v) => v.clone(),
        other => panic!("{rel}: {other:?}"),
    };
    let want = serde_json::json!({"pid": "<pid>", "claimed_at": "<time>", "attempt": 2, "started_at": null,
        "task_file": "<root>/tasks/marie/.inflight/t.json",
        "history": [{"duration_seconds": "<duration>", "exit_code": 1}]});
    assert_eq!(json("triggers/marie/t.json"), want);
    assert_eq!(json(event)["id"], "task_failed-marie-t");
    assert_eq!(
        tree[Path::new("tasks/marie/.rejected/x.orig")],
        golden::Content::Bytes(b"not JSON\n".to_vec())
    );
}
