//! SIGTERM drains and loses nothing; SIGHUP reloads; one process per worker.

use std::fs;

use crate::support::util::*;

#[test]
fn sigterm_requeues_what_runs_and_loses_nothing() {
    let root = Root::new();
    let env = [("MAX_CONCURRENT_TASKS", "2"), ("SHUTDOWN_GRACE", "0.3"), ("KILL_GRACE", "1")];
    let mut w = Worker::start(&root, "stopw", &env);
    for i in 0..5 {
        root.submit("stopw", &format!("s{i}"), "sleep 30");
    }
    root.wait_heartbeat("stopw", "two running", |h| h["active_tasks"] == 2);
    let status = w.stop();
    assert!(status.success(), "{status:?}\n{}", w.log_text());
    let hb = root.heartbeat("stopw").expect("heartbeat");
    assert_eq!(hb["status"], "stopped");
    assert!(root.results("stopw").is_empty(), "nothing failed or completed");
    assert!(names(&root.inflight("stopw")).is_empty(), "nothing left in flight");
    assert_eq!(names(&root.queue("stopw")).len(), 5, "all five back in the queue");
    wait_for("no agent left", || agents_of(&root, "stopw").is_empty().then_some(()));
    // The shutdown did not charge an attempt: after a restart each runs as attempt 1.
    for i in 0..5 {
        let mut t: serde_json::Value =
            read_json(&root.queue("stopw").join(format!("s{i}.json"))).expect("task");
        t["description"] = "hello".into();
        fs::write(root.queue("stopw").join(format!("s{i}.json")), t.to_string()).expect("rewrite");
    }
    let _w = Worker::start(&root, "stopw", &env);
    for i in 0..5 {
        let r = root.wait_result("stopw", &format!("s{i}"));
        assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(1)), "{r}");
    }
}

#[test]
fn sighup_applies_max_concurrent_from_the_env_file() {
    let root = Root::new();
    fs::write(root.path().join(".env"), "MAX_CONCURRENT_TASKS=1\n").expect("env");
    let w = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "0.1")]);
    root.wait_heartbeat("marie", "max_concurrent 1", |h| h["max_concurrent"] == 1);
    fs::write(root.path().join(".env"), "MAX_CONCURRENT_TASKS=4\n").expect("env");
    w.signal(libc::SIGHUP);
    root.wait_heartbeat("marie", "max_concurrent 4", |h| h["max_concurrent"] == 4);
    for i in 0..4 {
        root.submit("marie", &format!("p{i}"), "sleep 30");
    }
    root.wait_heartbeat("marie", "four at once", |h| h["active_tasks"] == 4);
    // A bad value on reload is refused and changes nothing.
    fs::write(root.path().join(".env"), "MAX_CONCURRENT_TASKS=lots\n").expect("env");
    w.signal(libc::SIGHUP);
    wait_for("the refusal in the log", || w.log_text().contains("reload failed").then_some(()));
    assert!(w.log_text().contains("MAX_CONCURRENT_TASKS=\\\"lots\\\""), "{}", w.log_text());
}

#[test]
fn second_instance_refuses() {
    let root = Root::new();
    let _first = Worker::start(&root, "marie", &[]);
    let out = command(&root, "marie", &[]).output().expect("run");
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running for worker \"marie\""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
