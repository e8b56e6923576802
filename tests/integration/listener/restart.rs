//! The listener restarted (cleanly, or killed with -9 while results pour in): the same
//! counts, no event twice, and what arrived while it was down announced once.

use std::collections::BTreeSet;

use super::*;
use crate::support::scrape::Samples;

fn processed(s: &Samples, worker: &str, status: &str) -> f64 {
    s.get(&format!("watcher_tasks_processed_total{{worker=\"{worker}\",status=\"{status}\"}}"))
}

/// One task event per result of `worker`, and no other task event of it.
fn assert_one_event_per_result(root: &Root, worker: &str) {
    let events = root.events();
    let announced: Vec<String> = events
        .iter()
        .filter(|e| e["worker"] == worker && e["task_id"].is_string())
        .filter_map(|e| e["task_id"].as_str().map(str::to_string))
        .collect();
    let unique: BTreeSet<&String> = announced.iter().collect();
    assert_eq!(unique.len(), announced.len(), "an event repeated: {announced:?}");
    let results: BTreeSet<String> =
        root.results(worker).iter().filter_map(|n| n.strip_suffix(".json")).map(str::to_string).collect();
    assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<String>>(), results);
}

#[test]
fn a_restart_keeps_the_counts_repeats_nothing_and_catches_up() {
    let root = Root::new();
    let (mut l, target) = start(&root, &[]);
    let _m = worker(&root, "marie");
    let _a = worker(&root, "anga");
    for i in 0..4 {
        root.submit("marie", &format!("m{i}"), if i == 0 { "fail 1" } else { "hello" });
        root.submit("anga", &format!("a{i}"), "hello");
    }
    root.wait_events("eight task events", |e| e.len() >= 8);
    let before = target.scrape();
    let events_before = root.events();
    assert_eq!(l.stop().code(), Some(0), "{}", l.log_text());
    // While it is down: more results.
    root.submit("marie", "down-1", "hello");
    root.submit("anga", "down-2", "fail 2");
    root.wait_result("marie", "down-1");
    root.wait_result("anga", "down-2");
    let (_l, target) = start(&root, &[]);
    let events = root.wait_events("the two results of the downtime", |e| e.len() >= events_before.len() + 2);
    let after = target.scrape();
    assert_eq!(processed(&after, "marie", "completed"), processed(&before, "marie", "completed") + 1.0);
    assert_eq!(processed(&after, "marie", "failed"), processed(&before, "marie", "failed"));
    assert_eq!(processed(&after, "anga", "failed"), processed(&before, "anga", "failed") + 1.0);
    assert_eq!(
        after.get("watcher_task_duration_seconds_count{worker=\"anga\"}"),
        before.get("watcher_task_duration_seconds_count{worker=\"anga\"}") + 1.0
    );
    assert_eq!(after.get("watcher_listener_events_total{event=\"task_completed\"}"), 8.0);
    let old: BTreeSet<String> = ids(&events_before).into_iter().collect();
    assert!(ids(&events).iter().filter(|id| !old.contains(*id)).count() == 2, "{events:#?}");
    assert_one_event_per_result(&root, "marie");
    assert_one_event_per_result(&root, "anga");
}

#[test]
fn a_listener_killed_with_9_repeats_no_event_and_loses_no_count() {
    let root = Root::new();
    let (mut l, _) = start(&root, &[]);
    let _m = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "0.2"), ("MAX_CONCURRENT_TASKS", "8")]);
    for i in 0..40 {
        root.submit("marie", &format!("t{i:02}"), "hello");
    }
    root.wait_events("the first events", |e| !e.is_empty());
    l.kill9();
    let (_l, target) = start(&root, &[]);
    wait_for("every result", || (root.results("marie").len() == 40).then_some(()));
    root.wait_events("forty events", |e| e.len() >= 40);
    wait_for("the counts", || (processed(&target.scrape(), "marie", "completed") == 40.0).then_some(()));
    assert_one_event_per_result(&root, "marie");
    assert_eq!(root.events().len(), 40);
}

#[test]
fn a_first_start_announces_recent_results_and_only_counts_old_ones() {
    let root = Root::new();
    let mut m = worker(&root, "marie");
    for id in ["old-1", "old-2", "new-1"] {
        root.submit("marie", id, "hello");
        root.wait_result("marie", id);
    }
    m.stop();
    // Two results from three days ago: history, older than LISTENER_BACKFILL (a day).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
    for id in ["old-1", "old-2"] {
        let path = root.path().join("results/marie").join(format!("{id}.json"));
        std::fs::File::options().write(true).open(&path).expect("open").set_modified(old).expect("mtime");
    }
    // No worker runs: nothing but the start itself makes the listener take the backlog.
    let (_l, target) = start(&root, &[]);
    wait_for("all three counted", || {
        (processed(&target.scrape(), "marie", "completed") == 3.0).then_some(())
    });
    let tasks: Vec<String> =
        root.events().iter().filter_map(|e| e["task_id"].as_str().map(str::to_string)).collect();
    assert_eq!(tasks, vec!["new-1".to_string()]);
}

/// `rm -rf` of every folder of the spool, the listener's own included, under a running
/// listener and worker: the listener re-creates and watches again what it needs, announces
/// what comes next, logs no error for it, and a restart afterwards repeats nothing.
#[test]
fn a_removed_spool_comes_back_for_the_listener() {
    let root = Root::new();
    let (mut l, _) = start(&root, &[]);
    let _m = worker(&root, "marie");
    root.submit("marie", "t1", "hello");
    root.wait_events("t1 announced", |e| e.iter().any(|e| e["task_id"] == "t1"));
    rm_rf(&root, &["tasks", "results", "triggers", "heartbeats", "dlq", "listener"]);
    root.submit("marie", "t2", "hello");
    root.wait_events("t2 announced", |e| e.iter().any(|e| e["task_id"] == "t2"));
    let state = root.path().join("listener/state.json");
    wait_for("the state written again", || {
        let s = read_json(&state)?;
        (s["workers"]["marie"]["counts"]["completed"].as_u64()? >= 1).then_some(())
    });
    let log = l.log_text();
    assert!(!log.contains("\"level\":\"error\""), "no error: {log}");
    assert!(log.contains("re-created"), "{log}");
    assert!(l.stop().success());
    // What was taken since is on record again: an edit meanwhile is not a new result.
    sed_i(&root, "marie", "t2");
    let (_l, _) = start(&root, &[]);
    root.submit("marie", "t3", "hello");
    root.wait_events("t3 announced", |e| e.iter().any(|e| e["task_id"] == "t3"));
    assert_one_event_per_result(&root, "marie");
}

/// Task events of `id` (in the order of their names).
fn task_events(root: &Root, id: &str) -> Vec<String> {
    root.events()
        .iter()
        .filter(|e| e["task_id"] == id)
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `sed -i` on a result: a new file renamed over it, as an operator's edit does.
fn sed_i(root: &Root, worker: &str, id: &str) {
    let path = root.path().join("results").join(worker).join(format!("{id}.json"));
    let out =
        std::process::Command::new("sed").args(["-i", "s/\"hostname\"/\"host_name\"/"]).arg(&path).output();
    assert!(out.expect("sed").status.success());
}

/// A result is announced and counted once, keyed by its task, however its file is touched
/// or edited afterwards, while the listener runs or while it is down; a new result of the
/// same task (a dead letter retried) is a new result and is announced.
#[test]
fn a_result_touched_or_edited_is_announced_once() {
    let root = Root::new();
    let (mut l, target) = start(&root, &[]);
    let _m = worker(&root, "marie");
    root.submit("marie", "t1", "hello");
    root.wait_events("t1 announced", |_| task_events(&root, "t1").len() == 1);
    let t1 = root.path().join("results/marie/t1.json");
    let out = std::process::Command::new("touch").arg(&t1).output().expect("touch");
    assert!(out.status.success());
    sed_i(&root, "marie", "t1");
    root.submit("marie", "t2", "hello");
    root.wait_events("t2 announced", |_| task_events(&root, "t2").len() == 1);
    let s = target.scrape_when("t2 counted", |s| processed(s, "marie", "completed") >= 2.0);
    assert_eq!(task_events(&root, "t1"), ["task_completed"]);
    assert_eq!(processed(&s, "marie", "completed"), 2.0, "t1 counted once");
    // Edited while the listener is down; and a task that failed, retried meanwhile, ran again.
    root.submit("marie", "t3", "fail-once");
    root.wait_events("t3 failed", |_| task_events(&root, "t3") == ["task_failed"]);
    assert!(l.stop().success());
    sed_i(&root, "marie", "t1");
    let out = crate::support::ctl::ctl_with_input(&root, &["dlq", "retry", "marie", "t3"], "");
    assert_eq!(out.code, 0, "{out:?}");
    wait_for("t3 ran again", || (root.result("marie", "t3")?["status"] == "completed").then_some(()));
    let (_l, target) = start(&root, &[]);
    root.submit("marie", "t4", "hello");
    root.wait_events("t4 announced", |_| task_events(&root, "t4").len() == 1);
    root.wait_events("t3's new result announced", |_| task_events(&root, "t3").len() == 2);
    assert_eq!(task_events(&root, "t1"), ["task_completed"]);
    assert_eq!(task_events(&root, "t3"), ["task_failed", "task_completed"]);
    let s = target.scrape_when("every result counted", |s| processed(s, "marie", "completed") >= 4.0);
    assert_eq!((processed(&s, "marie", "completed"), processed(&s, "marie", "failed")), (4.0, 1.0));
}
