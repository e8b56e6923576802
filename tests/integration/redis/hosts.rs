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
    let held = engine.pending_tasks("marie", "host-a");
    wa.kill9();
    let results = engine.wait_results("marie", &ids);
    assert!(results.iter().all(|r| r["status"] == "completed"), "{results:?}");
    // In flight: what host-a held and had an agent run for (it can be stopped between a
    // claim and its agent's start, or its agent killed with it before it logged its start).
    let a_ran = |id: &String| a.runs().iter().any(|r| r.split(' ').next() == Some(id.as_str()));
    let in_flight = held.iter().filter(|id| a_ran(id)).count();
    let runs = a.runs().len() + b.runs().len();
    // A task taken over resumes its agent's session (kept on storage both hosts share here);
    // one whose agent was killed before it made the session starts a fresh one at once: that
    // try is the only other run allowed, and is logged.
    let fresh = wb.log_text().matches("the agent has lost the task's session").count();
    assert!(fresh <= held.len(), "{}", wb.log_text());
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
    assert!(
        resumed + fresh <= held.len() && resumed + fresh >= in_flight,
        "sessions resumed on host-b, or started afresh"
    );
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
    // (An agent killed before it made its session is started again at once with a fresh
    // one: that run is logged.)
    let fresh = || log().matches("the agent has lost the task's session").count();
    wait_for("both tasks to run again", || (a.runs().len() == 4 + fresh()).then_some(()));
    let runs = a.runs();
    for id in &ids {
        assert!(runs.iter().filter(|r| r.starts_with(&format!("{id} "))).count() >= 2, "{runs:?}");
    }
}

#[test]
fn a_host_cut_off_past_its_lease_neither_doubles_a_result_nor_keeps_its_agent() {
    let Some(engine) = Engine::start(&[]) else { return };
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    // x ends while host-a is frozen (its late outcome must not double B's); y still runs on
    // host-a when it thaws (its agent must be stopped once its entry is gone).
    let wa = a.start(&engine, "marie", &[FAST[0], FAST[1], FAST[2], ("FAKE_SLEEP", "60")]);
    engine.submit("marie", &["x".to_string()], "sleep 0.5");
    engine.submit("marie", &["y".to_string()], "sleep-env");
    wait_for("host-a to run both", || (a.runs().len() == 2).then_some(()));
    wa.signal(libc::SIGSTOP);
    let wb = b.start(&engine, "marie", &[FAST[0], FAST[1], FAST[2], ("FAKE_SLEEP", "0.2")]);
    let ids = ["x".to_string(), "y".to_string()];
    let results = engine.wait_results("marie", &ids);
    assert!(results.iter().all(|r| r["status"] == "completed"), "{results:?}");
    wa.signal(libc::SIGCONT);
    let log = || wa.log_text();
    wait_for("host-a to stop y's agent", || {
        log().contains("finished by another host that took it over: its run here is stopped").then_some(())
    });
    wait_for("host-a's agents gone", || agents_of(&a.root, "marie").is_empty().then_some(()));
    // x's late outcome: acknowledged only, or its run stopped as y's was.
    wait_for("host-a to let go of x", || (engine.pending("marie", None) == 0).then_some(()));
    let stream = engine.stream("ww:results");
    assert_eq!(stream.len(), 2, "one result per task: {stream:?}");
    assert_eq!(engine.results_of("marie", &ids), results, "B's results stand");
    assert!(wb.log_text().matches("took over a task").count() == 2, "{}", wb.log_text());
}

#[test]
fn a_rate_limit_on_one_host_stops_claims_of_that_worker_on_the_others() {
    let Some(engine) = Engine::start(&[]) else { return };
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    let _wa = a.start(&engine, "marie", &[FAST[0], FAST[1], ("FAKE_RESET_IN", "3")]);
    engine.submit("marie", &["limited".to_string()], "replay-once 1.0-usage-limit.json 1");
    let pause = engine.keys("marie").pause();
    let ms = wait_for("the shared pause", || Some(engine.int(&["PTTL", &pause])).filter(|ms| *ms > 0));
    let until = epoch_now() + ms as f64 / 1000.0;
    // host-b starts in the pause, with work waiting: it claims nothing until the pause ends.
    let wb = b.start(&engine, "marie", &FAST);
    let ids = ids("q", 4);
    engine.submit("marie", &ids, "hello");
    wait_for("host-b to see the pause", || {
        wb.log_text().contains("another host of this worker hit a usage or rate limit").then_some(())
    });
    let results = engine.wait_results("marie", &ids);
    for r in &results {
        let started = started_at(r);
        assert!(started >= until - 0.05, "{} started at {started}, in the pause until {until}", r["task_id"]);
    }
    assert_eq!(engine.wait_results("marie", &["limited".to_string()])[0]["status"], "completed");
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn started_at(r: &serde_json::Value) -> f64 {
    let t = humantime::parse_rfc3339(r["started_at"].as_str().expect("started_at")).expect("time");
    t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
