//! Batches across workers: one `batch_completed` when all are in, with counts by status and
//! by worker; a batch without a size is counted, never completed; a task run again after its
//! batch completed does not complete it twice.

use serde_json::json;

use super::*;
use crate::support::ctl::ctl;

fn submit_in(root: &Root, worker: &str, id: &str, what: &str, batch: &str, size: Option<u64>) {
    let mut meta = json!({"batch": batch});
    if let Some(n) = size {
        meta["batch_size"] = json!(n);
    }
    root.submit_json(worker, id, &json!({"task_id": id, "description": what, "metadata": meta}));
}

#[test]
fn a_batch_over_two_workers_completes_once_with_its_counts() {
    let root = Root::new();
    let (_l, _) = start(&root, &[]);
    let _m = worker(&root, "marie");
    let _a = worker(&root, "anga");
    submit_in(&root, "marie", "b-1", "hello", "b", Some(3));
    submit_in(&root, "anga", "b-2", "fail 2", "b", Some(3));
    submit_in(&root, "marie", "u-1", "hello", "unsized", None);
    let events = root.wait_events("three task events", |e| e.len() >= 3);
    assert!(of_kind(&events, "batch_completed", None).is_empty(), "two of three: {events:#?}");
    submit_in(&root, "anga", "b-3", "hello", "b", Some(3));
    let events = root.wait_events("the batch completed", |e| !of_kind(e, "batch_completed", None).is_empty());
    let done = of_kind(&events, "batch_completed", None);
    assert_eq!(done.len(), 1);
    let b = done[0];
    assert_eq!((b["batch"].as_str(), b["size"].as_u64()), (Some("b"), Some(3)));
    assert_eq!((b["completed"].as_u64(), b["failed"].as_u64()), (Some(2), Some(1)));
    assert_eq!(
        b["workers"],
        json!({"anga": {"completed": 1, "failed": 1, "cancelled": 0}, "marie": {"completed": 1, "failed": 0, "cancelled": 0}})
    );
    // It sorts after the task event that completed it.
    let last_task = events.iter().position(|e| e["task_id"] == "b-3").expect("b-3's event");
    let batch_at = events.iter().position(|e| e["event"] == "batch_completed").expect("batch event");
    assert!(batch_at > last_task, "{events:#?}");
    // Task events carry their batch's progress; the unsized batch is counted, not completed.
    let u = events.iter().find(|e| e["task_id"] == "u-1").expect("u-1's event");
    assert_eq!(u["batch"], "unsized");
    assert_eq!(u["batch_progress"], json!({"completed": 1, "failed": 0, "cancelled": 0, "size": null}));
}

#[test]
fn a_task_retried_after_its_batch_completed_does_not_complete_it_again() {
    let root = Root::new();
    let (_l, _) = start(&root, &[]);
    let _m = worker(&root, "marie");
    submit_in(&root, "marie", "r-1", "hello", "r", Some(2));
    submit_in(&root, "marie", "r-2", "fail 3", "r", Some(2));
    root.wait_events("the batch completed", |e| !of_kind(e, "batch_completed", None).is_empty());
    ctl(&root, &["dlq", "retry", "marie", "r-2"]).expect(0);
    let events = root.wait_events("r-2 failed twice", |e| {
        e.iter().filter(|e| e["task_id"] == "r-2" && e["event"] == "task_failed").count() == 2
    });
    assert_eq!(of_kind(&events, "batch_completed", None).len(), 1, "{events:#?}");
    let second = events.iter().rfind(|e| e["task_id"] == "r-2").expect("second r-2 event");
    assert!(second.get("batch_progress").is_none(), "not counted again: {second}");
}
