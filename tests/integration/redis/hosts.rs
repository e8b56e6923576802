//! Hosts that die or go silent: their tasks are taken over after one lease, every task gets
//! exactly one result, and the only extra runs are those that were in flight.

use crate::support::engine::*;
use crate::support::util::*;

/// Short leases, so a test lasts seconds: a heartbeat every 0.2 s, a lease of 1 s.
const FAST: [(&str, &str); 3] =
    [("HEARTBEAT_INTERVAL", "0.2"), ("LEASE", "1"), ("MAX_CONCURRENT_TASKS", "2")];

#[test]
fn a_host_killed_mid_task_has_its_tasks_taken_over_after_a_lease() {
    let Some(engine) = Engine::start(&[]) else { return };
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    let ids = ids("t", 12);
    let mut wa = a.start(&engine, "marie", &FAST);
    let wb = b.start(&engine, "marie", &FAST);
    assert_eq!(engine.submit("marie", &ids, "sleep 0.4"), ids.len());
    // host-a mid-task: frozen, its held entries counted, then killed.
    wait_for("host-a to run a task", || (!a.runs().is_empty()).then_some(()));
    wa.signal(libc::SIGSTOP);
    let in_flight = engine.pending("marie", Some("host-a"));
    wa.kill9();
    let results = engine.wait_results("marie", &ids);
    assert!(results.iter().all(|r| r["status"] == "completed"), "{results:?}");
    let runs = a.runs().len() + b.runs().len();
    // A task taken over resumes its agent's session (kept on storage both hosts share here);
    // one whose agent was killed before it made the session starts a fresh one at once: that
    // try is the only other run allowed, and is logged.
    let fresh = wb.log_text().matches("the agent has lost the task's session").count();
    assert!(fresh <= in_flight, "{}", wb.log_text());
    let lists = (a.runs(), b.runs());
    assert_eq!(
        runs,
        ids.len() + in_flight + fresh,
        "extra runs: the tasks in flight at the kill ({in_flight}): {lists:?}"
    );
    // Each resumed session's transcript holds both hosts' runs.
    let resumed = std::fs::read_dir(engine.sessions())
        .expect("sessions")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| std::fs::read_to_string(e.path()).unwrap_or_default().lines().count() == 2)
        })
        .count();
    assert_eq!(resumed, in_flight - fresh, "sessions resumed on host-b");
    assert!(in_flight > 0, "host-a held nothing when it was killed: the test proved nothing");
    // One entry per result on the results stream; nothing left pending or queued.
    let stream = engine.stream("ww:results");
    assert_eq!(stream.len(), ids.len(), "{stream:?}");
    wait_for("nothing pending", || (engine.pending("marie", None) == 0).then_some(()));
    assert_eq!(engine.int(&["XLEN", &engine.keys("marie").queue()]), 0);
}

#[test]
fn a_host_restarted_under_its_name_recovers_its_own_tasks_at_once() {
    let Some(engine) = Engine::start(&[]) else { return };
    let a = Host::new("host-a");
    // A lease of an hour: only the host's own recovery can take its tasks back.
    let env = [("HEARTBEAT_INTERVAL", "1"), ("LEASE", "3600"), ("MAX_CONCURRENT_TASKS", "2")];
    let ids = ids("r", 2);
    let mut w = a.start(&engine, "marie", &env);
    engine.submit("marie", &ids, "sleep 30");
    wait_for("both tasks to run", || (a.runs().len() == 2).then_some(()));
    w.kill9();
    assert_eq!(engine.pending("marie", Some("host-a")), 2);
    let w = a.start(&engine, "marie", &env);
    let log = || w.log_text();
    wait_for("the leftovers re-queued", || {
        log().contains("task left in flight by a daemon that died").then_some(())
    });
    wait_for("both tasks to run again", || (a.runs().len() == 4).then_some(()));
}
