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

/// A request acted on by one host is forgotten by the other hosts of the worker too: a task of
/// the same id queued again later (its result gone, as RESULT_TTL removes it) runs, and is not
/// cancelled by what another host remembered. Failed before: the other host kept the request
/// for as long as it ran, and cancelled the new task when it claimed it.
#[test]
fn a_request_acted_on_by_one_host_is_forgotten_by_the_others() {
    let Some(engine) = Engine::start(&[]) else { return };
    let env = [("HEARTBEAT_INTERVAL", "0.2"), ("LEASE", "1"), ("MAX_CONCURRENT_TASKS", "1")];
    let hosts = [Host::new("host-a"), Host::new("host-b")];
    let mut workers: Vec<_> = hosts.iter().map(|h| Some(h.start(&engine, "marie", &env))).collect();
    // One host runs `busy`; the other, free, runs `again`: both hear the request to cancel
    // `again`, and only the one running it acts on it.
    engine.submit("marie", &["busy".to_string()], "sleep 60");
    let keeper = wait_for("busy to run", || hosts.iter().position(|h| !h.runs().is_empty()));
    let actor = 1 - keeper;
    engine.submit("marie", &["again".to_string()], "sleep 60");
    wait_for("again to run", || (!hosts[actor].runs().is_empty()).then_some(()));
    let here = Root::new();
    engine.ctl(&here, &["cancel", "marie", "again", "--wait-timeout", "60"]).expect(0);
    assert_eq!(engine.result("marie", "again").expect("result")["status"], "cancelled");
    // The host running `busy` has read the worker's requests since: it does at every
    // heartbeat, and has written two since.
    let beat = engine.keys("marie").heartbeat(&hosts[keeper].consumer);
    for _ in 0..2 {
        let before = format!("{:?}", engine.cmd(&["GET", &beat]));
        wait_for("a heartbeat of the busy host", || {
            (format!("{:?}", engine.cmd(&["GET", &beat])) != before).then_some(())
        });
    }
    // The host that acted leaves; the result of `again` expires; `busy` is cancelled so the
    // host left is free; `again` is queued anew: it runs there.
    workers[actor].take().expect("worker").stop();
    engine.cmd(&["DEL", &engine.keys("marie").result("again")]);
    engine.ctl(&here, &["cancel", "marie", "busy", "--wait-timeout", "60"]).expect(0);
    engine.submit("marie", &["again".to_string()], "hello");
    let r = engine.wait_results("marie", &["again".to_string()]);
    assert_eq!(r[0]["status"], "completed", "{}", r[0]);
}
