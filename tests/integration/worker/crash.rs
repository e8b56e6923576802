//! kill -9 at any moment loses nothing: every task ends with exactly one result.

use std::collections::BTreeSet;
use std::fs;

use crate::support::util::*;

#[test]
fn kill_nine_repeatedly_during_a_few_hundred_tasks() {
    const N: usize = 300;
    let root = Root::new();
    let env = [("MAX_CONCURRENT_TASKS", "4"), ("MAX_RECLAIMS", "100")];
    let mut w = Worker::start(&root, "crashw", &env);
    for i in 0..N {
        // Some tasks take a while, so kills land while agents run.
        let d = if i % 10 == 0 { "sleep 0.2" } else { "hello" };
        root.submit("crashw", &format!("c-{i:03}"), d);
    }
    for round in 1..=5 {
        let target = round * N / 7;
        wait_for("progress before the next kill", || (root.results("crashw").len() >= target).then_some(()));
        w.kill9();
        w = Worker::start(&root, "crashw", &env);
    }
    wait_for("all results", || (root.results("crashw").len() == N).then_some(()));
    let expected: BTreeSet<String> = (0..N).map(|i| format!("c-{i:03}.json")).collect();
    let got: BTreeSet<String> = root.results("crashw").into_iter().collect();
    assert_eq!(got, expected);
    for name in &got {
        let r = read_json(&root.path().join("results/crashw").join(name)).expect("result");
        assert_eq!(r["status"], "completed", "{name}: {r}");
    }
    wait_for("empty queue and in-flight folders", || {
        (names(&root.queue("crashw")).is_empty() && names(&root.inflight("crashw")).is_empty()).then_some(())
    });
    assert!(root.dlq("crashw").is_empty(), "{:?}", root.dlq("crashw"));
    assert!(w.stop().success());
    wait_for("no orphaned agent", || agents_of(&root, "crashw").is_empty().then_some(()));
    // Nothing half-written anywhere.
    for dir in ["results/crashw", "triggers/crashw", "heartbeats"] {
        let leftovers: Vec<_> = fs::read_dir(root.path().join(dir))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left in {dir}");
    }
}

#[test]
fn recovery_requeues_and_cleans_up() {
    let root = Root::new();
    // A daemon died with two tasks in flight: one finished (its result exists), one not.
    let inflight = root.inflight("marie");
    fs::create_dir_all(&inflight).expect("inflight");
    fs::create_dir_all(root.path().join("results/marie")).expect("results");
    fs::write(inflight.join("done.json"), r#"{"description":"hello"}"#).expect("w");
    fs::write(root.path().join("results/marie/done.json"), r#"{"task_id":"done","status":"completed"}"#)
        .expect("w");
    fs::write(inflight.join("again.json"), r#"{"description":"hello"}"#).expect("w");
    let w = Worker::start(&root, "marie", &[]);
    let r = root.wait_result("marie", "again");
    assert_eq!(r["status"], "completed");
    let log = w.log_text();
    let reclaimed = format!("\"message_id\":\"{}\"", worker_watcher::log::ids::TASK_RECLAIMED);
    assert!(log.lines().any(|l| l.contains(&reclaimed) && l.contains("\"task_id\":\"again\"")), "{log}");
    let done = root.result("marie", "done").expect("kept");
    assert!(done.get("worker").is_none(), "the finished task was not run again");
    wait_for("in-flight folder empty", || names(&inflight).is_empty().then_some(()));
}

#[test]
fn a_task_that_keeps_dying_with_the_daemon_is_dead_lettered() {
    let root = Root::new();
    let inflight = root.inflight("marie");
    fs::create_dir_all(&inflight).expect("inflight");
    fs::write(inflight.join("doomed.json"), r#"{"description":"hello","_watcher":{"reclaims":2}}"#)
        .expect("w");
    let _w = Worker::start(&root, "marie", &[("MAX_RECLAIMS", "2")]);
    let r = root.wait_result("marie", "doomed");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["reason"], "reclaim_limit");
    let dlq = root.dlq("marie");
    assert_eq!(dlq[0]["reason"], "reclaim_limit");
    assert!(dlq[0]["message"].as_str().expect("msg").contains("MAX_RECLAIMS=2"));
}

#[test]
fn attempts_survive_a_crash() {
    let root = Root::new();
    // Failed once before the crash, waiting for its retry.
    let inflight = root.inflight("marie");
    fs::create_dir_all(&inflight).expect("inflight");
    fs::write(
        inflight.join("retry.json"),
        r#"{"description":"fail","_watcher":{"attempts":1,"history":[{"attempt":1,"reason":"exit_code"}]}}"#,
    )
    .expect("w");
    let _w = Worker::start(&root, "marie", &[("MAX_RETRIES", "1"), ("INITIAL_RETRY_DELAY", "0")]);
    let r = root.wait_result("marie", "retry");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["attempts"], 2, "the attempt made before the crash counts: {r}");
    assert_eq!(root.dlq("marie")[0]["history"].as_array().expect("h").len(), 2);
}
