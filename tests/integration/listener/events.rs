//! Every result of every worker becomes exactly one event, written whole, named by time.

use serde_json::Value;

use super::*;
use crate::support::ctl::ctl;

#[test]
fn every_completed_and_failed_task_of_two_workers_is_announced_once() {
    let root = Root::new();
    let (_l, _) = start(&root, &[]);
    let _marie = worker(&root, "marie");
    let _anga = worker(&root, "anga");
    let tasks = [
        ("marie", "m-ok", "hello"),
        ("marie", "m-fail", "fail 3"),
        ("anga", "a-ok", "hello"),
        ("anga", "a-agent", "agent-error"),
    ];
    for (w, id, what) in tasks {
        root.submit(w, id, what);
    }
    let events = root.wait_events("four task events", |e| e.len() >= 4);
    let tasks_of =
        |e: &[Value]| of_kind(e, "task_completed", None).len() + of_kind(e, "task_failed", None).len();
    assert_eq!(tasks_of(&events), 4, "{events:#?}");
    for (w, id, _) in tasks {
        let mine: Vec<&Value> = events.iter().filter(|e| e["task_id"] == id).collect();
        assert_eq!(mine.len(), 1, "one event for {id}: {events:#?}");
        let e = mine[0];
        let result = root.wait_result(w, id);
        assert_eq!(e["worker"], w);
        assert_eq!(e["status"], result["status"]);
        assert_eq!(e["reason"], result.get("reason").cloned().unwrap_or(Value::Null));
        let kind = if result["status"] == "completed" { "task_completed" } else { "task_failed" };
        assert_eq!(e["event"], kind);
        let path = e["result"].as_str().expect("result path");
        assert_eq!(read_json(std::path::Path::new(path)), Some(result));
        assert!(e["duration_seconds"].as_f64().is_some() && e["time"].is_string(), "{e}");
    }
    let failed = of_kind(&events, "task_failed", None);
    let reasons: Vec<&str> = failed.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"exit_code") && reasons.contains(&"agent_error"), "{reasons:?}");
    // Names are the ids, and sort by the time of what they report.
    let names = names(&root.events_dir());
    let mut by_name: Vec<String> = ids(&events).into_iter().map(|id| format!("{id}.json")).collect();
    assert_eq!(names, by_name);
    by_name.sort_by_key(|n| n[..26].to_string());
    assert_eq!(names, by_name);
    // watcherctl reads them as the orchestrator would.
    let out = ctl(&root, &["events", "--json"]).expect(0);
    let printed: Vec<Value> =
        out.stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(ids(&printed), ids(&events));
    let text = ctl(&root, &["events"]).expect(0).stdout;
    assert!(
        text.lines()
            .any(|l| l.contains("task_failed") && l.contains("m-fail") && l.contains("reason=exit_code")),
        "{text}"
    );
}

#[test]
fn a_worker_appearing_later_is_followed_when_workers_is_unset() {
    let root = Root::new();
    let (l, target) = start(&root, &[]);
    // A stray file in tasks/ (a task written one folder too high) is not a worker.
    std::fs::write(root.path().join("tasks").join("stray.json"), "{}").expect("stray file");
    let _w = worker(&root, "late");
    root.submit("late", "t1", "hello");
    let events = root
        .wait_events("the late worker's event", |e| !of_kind(e, "task_completed", Some("late")).is_empty());
    assert_eq!(of_kind(&events, "task_completed", Some("late")).len(), 1);
    assert_eq!(target.scrape().get("watcher_listener_workers"), 1.0);
    assert!(l.log_text().contains("following a new worker"), "{}", l.log_text());
}

#[test]
fn with_workers_set_other_workers_are_not_followed() {
    let root = Root::new();
    let (_l, _) = start(&root, &[("WORKERS", "marie")]);
    let _m = worker(&root, "marie");
    let _o = worker(&root, "other");
    root.submit("other", "o1", "hello");
    root.wait_result("other", "o1");
    root.submit("marie", "m1", "hello");
    let events =
        root.wait_events("marie's event", |e| !of_kind(e, "task_completed", Some("marie")).is_empty());
    assert!(of_kind(&events, "task_completed", Some("other")).is_empty(), "{events:#?}");
}
