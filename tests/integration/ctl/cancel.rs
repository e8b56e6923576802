//! `watcherctl tasks` and `watcherctl cancel` against a real worker: the listing of queued,
//! running and waiting tasks; a cancel of each, its result, the agent stopped, the exit
//! statuses; task_cancelled announced, and counted alike on the worker's endpoint and the
//! listener's.

use serde_json::Value;

use crate::support::ctl::*;
use crate::support::scrape::Target;
use crate::support::util::*;

/// The row of task `id` in `watcherctl tasks W --json`.
fn listed(root: &Root, worker: &str, id: &str) -> Option<Value> {
    let doc = ctl(root, &["tasks", worker, "--json"]).expect(0).json();
    doc["tasks"].as_array()?.iter().find(|t| t["task_id"] == id).cloned()
}

#[test]
fn tasks_lists_running_and_queued_and_cancel_ends_each() {
    let root = Root::new();
    let sock = root.path().join("marie.metrics.sock").display().to_string();
    let env = [("MAX_CONCURRENT_TASKS", "1"), ("ENABLE_METRICS", "true"), ("METRICS_LISTEN", sock.as_str())];
    let _w = Worker::start(&root, "marie", &env);
    let (_l, listener) = crate::listener::start(&root, &[]);
    root.submit("marie", "run", "sleep 600");
    root.submit("marie", "wait", "hello");
    let running =
        wait_for("run running", || listed(&root, "marie", "run").filter(|t| t["state"] == "running"));
    assert_eq!(running["attempt"], 1);
    let pid = running["agent_pid"].as_i64().expect("pid") as i32;
    assert!(group_alive(pid));
    assert_eq!(running["session_id"].as_str().map(str::len), Some(36), "{running}");
    let queued = listed(&root, "marie", "wait").expect("listed");
    assert_eq!(queued["state"], "queued");
    let text = ctl(&root, &["tasks", "marie"]).expect(0).stdout;
    assert!(text.starts_with("marie: busy, 1/1 running"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("run ") && l.contains("running")), "{text}");

    // The queued task: cancelled without running.
    let r = ctl(&root, &["cancel", "marie", "wait"]).expect(0);
    assert_eq!(r.stdout, "wait: cancelled\n");
    let result = root.result("marie", "wait").expect("result");
    assert_eq!((result["status"].as_str(), result["attempts"].as_u64()), (Some("cancelled"), Some(0)));
    // The running one: its agent stopped, its result cancelled, no dead letter.
    ctl(&root, &["cancel", "marie", "run", "--json"]).expect(0);
    let result = root.result("marie", "run").expect("result");
    assert_eq!(result["status"], "cancelled", "{result}");
    assert!(result["message"].as_str().is_some_and(|m| m.starts_with("cancelled by ")), "{result}");
    wait_for("the agent gone", || (!group_alive(pid)).then_some(()));
    assert!(root.dlq("marie").is_empty());
    assert!(ctl(&root, &["tasks", "marie", "--json"]).expect(0).json()["tasks"]
        .as_array()
        .is_some_and(Vec::is_empty));

    // Idempotent: a task with a result says so (1); an unknown id is not found (66).
    let again = ctl(&root, &["cancel", "marie", "run"]).expect(1);
    assert!(again.stderr.contains("already has a result: cancelled"), "{again:?}");
    ctl(&root, &["cancel", "marie", "nothing"]).expect(66);
    assert!(names(&root.queue("marie").join(".cancel")).is_empty(), "requests dropped once done");

    // Announced, and counted alike whichever endpoint is scraped.
    let events =
        root.wait_events("two task_cancelled", |e| of_kind(e, "task_cancelled", Some("marie")).len() == 2);
    assert!(of_kind(&events, "task_failed", None).is_empty());
    let series = "watcher_tasks_processed_total{worker=\"marie\",status=\"cancelled\"}";
    wait_for("the listener's count", || (listener.scrape().get(series) == 2.0).then_some(()));
    // (The worker's own endpoint orders labels by name.)
    let own = Target::Unix(root.path().join("marie.metrics.sock"));
    assert_eq!(own.scrape().get("watcher_tasks_processed_total{status=\"cancelled\",worker=\"marie\"}"), 2.0);
}

#[test]
fn a_task_waiting_for_its_retry_is_listed_with_its_due_time_and_cancelled() {
    let root = Root::new();
    let env = [("INITIAL_RETRY_DELAY", "3600"), ("MAX_RETRY_DELAY", "3600")];
    let _w = Worker::start(&root, "marie", &env);
    root.submit("marie", "w1", "fail");
    let row = wait_for("w1 waiting", || {
        listed(&root, "marie", "w1").filter(|t| t["state"] == "waiting" && t["retry_at"].is_string())
    });
    assert_eq!(row["attempt"], 1);
    assert!(row["retry_at"].as_str().is_some_and(|t| t > "2020"), "{row}");
    let text = ctl(&root, &["tasks", "marie"]).expect(0).stdout;
    assert!(text.contains("retry in "), "{text}");
    let r = ctl(&root, &["cancel", "marie", "w1", "--json"]).expect(0).json();
    assert_eq!(r["status"], "cancelled");
    let result = root.result("marie", "w1").expect("result");
    assert_eq!((result["status"].as_str(), result["attempts"].as_u64()), (Some("cancelled"), Some(1)));
    assert!(root.dlq("marie").is_empty());
}

#[test]
fn a_cancel_asked_while_the_worker_is_stopped_is_done_when_it_starts() {
    let root = Root::new();
    let mut w = Worker::start(&root, "marie", &[]);
    assert!(w.stop().success());
    root.submit("marie", "later", "hello");
    let r = ctl(&root, &["cancel", "marie", "later", "--no-wait"]).expect(0);
    assert_eq!(r.stdout, "later: cancel requested\n");
    let listed = listed(&root, "marie", "later").expect("listed");
    assert_eq!(
        (listed["state"].as_str(), listed["cancel_requested"].as_bool()),
        (Some("queued"), Some(true))
    );
    let _w = Worker::start(&root, "marie", &[]);
    let result = root.wait_result("marie", "later");
    assert_eq!(result["status"], "cancelled", "it never ran: {result}");
}
