//! Agents that do not finish are ended by the timeout, with nothing of theirs left.

use crate::support::util::*;

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
    wait_for("no agent process left", || agents_of(&root, worker).is_empty().then_some(()));
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
    wait_for("no agent process left", || agents_of(&root, "bgw").is_empty().then_some(()));
}

#[test]
fn per_task_timeout_overrides() {
    let root = Root::new();
    let _w =
        Worker::start(&root, "marie", &[("TASK_TIMEOUT", "600"), ("MAX_RETRIES", "0"), ("KILL_GRACE", "0")]);
    root.submit_json("marie", "quick", &serde_json::json!({"description": "hang", "timeout": 0.3}));
    assert_eq!(root.wait_result("marie", "quick")["reason"], "timeout");
}

/// A stall of the worker (SIGSTOP here; a VM paused and resumed) past a task's deadline is not
/// a timeout when the agent ended in time: the agent stops the worker, exits 0 at once, and
/// the worker is let go only once the deadline has passed. The run is judged by its exit.
#[test]
fn a_stall_of_the_worker_past_the_deadline_is_not_a_timeout() {
    use std::os::unix::fs::PermissionsExt;
    let root = Root::new();
    let (agent, stamp) = (root.path().join("stopper"), root.path().join("agent-started"));
    std::fs::write(
        &agent,
        "#!/bin/sh\ncat >/dev/null\ndate +%s.%N >\"$STAMP.tmp\" && mv \"$STAMP.tmp\" \"$STAMP\"\nkill -STOP \"$PPID\"\n\
         echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done in time\"}'\n",
    )
    .expect("agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = [
        ("CLAUDE_COMMAND", agent.to_str().expect("utf-8")),
        ("CLAUDE_ARGS", ""),
        ("STAMP", stamp.to_str().expect("utf-8")),
        ("MAX_RETRIES", "0"),
        ("KILL_GRACE", "0"),
    ];
    let w = Worker::start(&root, "stall", &env);
    let timeout = 1.0;
    root.submit_json("stall", "quick", &serde_json::json!({"description": "x", "timeout": timeout}));
    let started: f64 =
        wait_for("the agent to start", || std::fs::read_to_string(&stamp).ok()?.trim().parse().ok());
    // The worker is stopped (by its agent) and the agent has exited: only a zombie is left.
    wait_for("the worker to be stopped", || proc_state(w.pid()).filter(|s| *s == 'T'));
    wait_for("the deadline to pass", || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        (now > started + timeout + 0.5).then_some(())
    });
    w.signal(libc::SIGCONT);
    let r = root.wait_result("stall", "quick");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["attempts"], 1, "{r}");
    assert_eq!(r["output"]["result"], "done in time", "{r}");
}

/// The state letter of a process (`R`, `S`, `T` stopped, `Z` zombie), from /proc.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// The same for the end of the shutdown's grace: an agent that ended during a stall of the
/// draining worker is judged by its exit, not stopped and re-queued. The agent waits on a
/// FIFO until the drain has begun, then stops the worker and exits 0.
#[test]
fn a_stall_past_the_shutdown_grace_keeps_an_outcome_that_came_in_time() {
    use std::os::unix::fs::PermissionsExt;
    let root = Root::new();
    let (agent, fifo, stamp) =
        (root.path().join("waiter"), root.path().join("go"), root.path().join("agent-started"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    std::fs::write(
        &agent,
        "#!/bin/sh\ncat >/dev/null\ntouch \"$STAMP\"\nread x <\"$GO\"\nkill -STOP \"$PPID\"\n\
         echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done in time\"}'\n",
    )
    .expect("agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = [
        ("CLAUDE_COMMAND", agent.to_str().expect("utf-8")),
        ("CLAUDE_ARGS", ""),
        ("STAMP", stamp.to_str().expect("utf-8")),
        ("GO", fifo.to_str().expect("utf-8")),
        ("SHUTDOWN_GRACE", "1"),
    ];
    let mut w = Worker::start(&root, "drain", &env);
    root.submit("drain", "late", "x");
    wait_for("the agent to start", || stamp.exists().then_some(()));
    let stopping = std::time::Instant::now();
    w.signal(libc::SIGTERM);
    w.wait_notify("STOPPING=1");
    std::fs::write(&fifo, "go\n").expect("let the agent go");
    wait_for("the worker to be stopped", || proc_state(w.pid()).filter(|s| *s == 'T'));
    wait_for("the grace to pass", || (stopping.elapsed().as_secs_f64() > 1.5).then_some(()));
    w.signal(libc::SIGCONT);
    assert!(w.wait_exit().success(), "{}", w.log_text());
    let r = root.result("drain", "late").unwrap_or_else(|| panic!("no result; log:\n{}", w.log_text()));
    assert_eq!(r["status"], "completed", "{r}");
}
