//! watcherctl tasks and cancel on the engine, with a worker on another "host": the request
//! goes through the engine (nothing is signalled), with the folders' output and exit statuses.

use crate::support::engine::*;
use crate::support::util::*;

#[test]
fn watcherctl_lists_and_cancels_tasks_of_a_worker_on_another_host() {
    let Some(engine) = Engine::start(&[]) else { return };
    let a = Host::new("host-a");
    let env = [("HEARTBEAT_INTERVAL", "0.2"), ("LEASE", "1"), ("MAX_CONCURRENT_TASKS", "1")];
    let _w = a.start(&engine, "marie", &env);
    engine.submit("marie", &["running".to_string()], "sleep 60");
    wait_for("the task to run", || (!a.runs().is_empty()).then_some(()));
    engine.submit("marie", &["queued".to_string()], "hello");
    // watcherctl runs on no host of the worker: its own root.
    let here = Root::new();
    let listed = engine.ctl(&here, &["tasks", "marie", "--json"]).expect(0).json();
    let text = listed.to_string();
    assert!(text.contains("\"running\"") && text.contains("\"queued\""), "{listed}");
    let queued = engine.ctl(&here, &["cancel", "marie", "queued", "--wait-timeout", "60"]).expect(0);
    assert_eq!(engine.result("marie", "queued").expect("result")["status"], "cancelled", "{queued:?}");
    engine.ctl(&here, &["cancel", "marie", "running", "--wait-timeout", "60"]).expect(0);
    let r = engine.result("marie", "running").expect("result");
    assert_eq!(r["status"], "cancelled", "{r}");
    wait_for("the agent stopped", || agents_of(&a.root, "marie").is_empty().then_some(()));
    // Asked again: the task has its result (1); an unknown id (66).
    engine.ctl(&here, &["cancel", "marie", "running"]).expect(1);
    engine.ctl(&here, &["cancel", "marie", "nothing"]).expect(66);
    let left = engine.cmd(&["HLEN", &engine.keys("marie").cancels()]);
    assert_eq!(left, redis::Value::Int(0), "the requests are dropped once acted on");
}
