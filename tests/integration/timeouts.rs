//! Agents that do not finish are ended by the timeout, with nothing of theirs left.

use crate::util::*;

fn timed_out(description: &str, worker: &str) {
    let root = Root::new();
    let _w =
        Worker::start(&root, worker, &[("TASK_TIMEOUT", "0.5"), ("KILL_GRACE", "0.5"), ("MAX_RETRIES", "0")]);
    root.submit(worker, "slow", description);
    let r = root.wait_result(worker, "slow");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["reason"], "timeout", "{r}");
    let receipt = read_json(&root.path().join("triggers").join(worker).join("slow.json")).expect("receipt");
    let pgid = receipt["agent_pid"].as_i64().expect("agent pid") as i32;
    wait_for("the agent's process group to be gone", || (!group_alive(pgid)).then_some(()));
    wait_for("no agent process left", || agents_of(worker).is_empty().then_some(()));
}

#[test]
fn hung_agent() {
    timed_out("hang", "hangw");
}

#[test]
fn agent_with_a_grandchild_holding_the_pipes() {
    timed_out("fork-hang", "forkw");
}

#[test]
fn agent_that_ignores_sigterm() {
    timed_out("ignore-term", "termw");
}

#[test]
fn exited_agent_leaves_no_background_process() {
    let root = Root::new();
    let _w = Worker::start(&root, "bgw", &[]);
    root.submit("bgw", "bg", "fork-exit");
    let r = root.wait_result("bgw", "bg");
    assert_eq!(r["status"], "completed", "{r}");
    wait_for("no agent process left", || agents_of("bgw").is_empty().then_some(()));
}

#[test]
fn per_task_timeout_overrides() {
    let root = Root::new();
    let _w =
        Worker::start(&root, "marie", &[("TASK_TIMEOUT", "600"), ("MAX_RETRIES", "0"), ("KILL_GRACE", "0")]);
    root.submit_json("marie", "quick", &serde_json::json!({"description": "hang", "timeout": 0.3}));
    assert_eq!(root.wait_result("marie", "quick")["reason"], "timeout");
}
