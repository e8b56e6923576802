//! The agent's session across a task's runs: named on the first, resumed on the next (a retry,
//! a reclaim after the worker died), replaced at once when the agent has lost it, and every
//! run listed in the result with its session and cost.

use super::*;
use crate::agent::session;

/// Sessions on, with Claude Code's flags (the harness's agent is not called claude).
const SESSIONS: [(&str, &str); 3] =
    [("AGENT_SESSION_FLAG", "--session-id"), ("AGENT_RESUME_FLAG", "--resume"), ("MAX_RETRIES", "3")];

fn missing(id: &str) -> Plan {
    Plan { stderr: format!("No conversation found with session ID: {id}\n"), ..Plan::exit(1, "") }
}

/// (session id, resume id) of each start of `id`.
fn flags(h: &Harness, id: &str) -> Vec<(Option<String>, Option<String>)> {
    let runs = h.runs.borrow();
    let own = |s: &fake::Started, f: &str| s.option(f).map(str::to_string);
    runs.starts_of(id).iter().map(|s| (own(s, "--session-id"), own(s, "--resume"))).collect()
}

#[test]
fn a_retry_resumes_the_session_of_the_failed_run_and_the_result_lists_both_runs() {
    let mut h = Harness::start(
        &SESSIONS,
        |_| {},
        |_, attempt| match attempt {
            1 => Plan {
                stderr: "boom".into(),
                ..Plan::exit(1, r#"{"type":"result","is_error":true,"total_cost_usd":0.25}"#)
            },
            _ => success(0.5),
        },
    );
    h.submit("t", "x");
    let r = h.wait_result("t");
    assert_eq!(r.status, "completed");
    let f = flags(&h, "t");
    let id = f[0].0.clone().expect("a new session on the first run");
    assert_eq!(f, vec![(Some(id.clone()), None), (None, Some(id.clone()))], "the retry resumes it");
    type Row<'a> = (u32, Option<&'a str>, bool, &'a str, Option<f64>);
    let runs: Vec<Row> = r
        .runs
        .iter()
        .map(|r| (r.attempt, r.session_id.as_deref(), r.resumed, r.outcome.as_str(), r.cost_usd))
        .collect();
    assert_eq!(
        runs,
        vec![
            (1, Some(id.as_str()), false, "exit_code", Some(0.25)),
            (2, Some(id.as_str()), true, "completed", Some(0.5))
        ]
    );
    let receipt = h.store.borrow().receipts.last().cloned().expect("a receipt");
    assert_eq!((receipt.session_id.as_deref(), receipt.resumed), (Some(id.as_str()), true));
}

#[test]
fn a_session_the_agent_lost_is_replaced_by_a_fresh_one_without_charging_the_task() {
    let mut h = Harness::start(&SESSIONS, |_| {}, |_, _| failure());
    h.submit("t", "x");
    h.until("the first run", |h| h.starts("t") == 1);
    // The retry resumes; the agent says it has lost the session; a fresh one succeeds.
    let first = flags(&h, "t")[0].0.clone().expect("session");
    let lost = first.clone();
    let mut resumed = false;
    h.runs.borrow_mut().set_script(move |_, _| match std::mem::replace(&mut resumed, true) {
        false => missing(&lost),
        true => success(0.0),
    });
    let r = h.wait_result("t");
    assert_eq!((r.status.as_str(), r.attempts), ("completed", 2), "the lost session was not an attempt");
    let f = flags(&h, "t");
    assert_eq!(f.len(), 3, "{f:?}");
    assert_eq!(f[1], (None, Some(first.clone())), "resumed");
    let fresh = f[2].0.clone().expect("a new session");
    assert_ne!(fresh, first);
    assert_eq!(f[2].1, None);
    let outcomes: Vec<&str> = r.runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["exit_code", "session_missing", "completed"]);
    assert_eq!(r.runs[2].session_id.as_deref(), Some(fresh.as_str()));
    assert_eq!(h.heartbeat().failed, 0);
}

#[test]
fn a_task_reclaimed_after_the_worker_died_resumes_its_first_session() {
    let store = MemSpool::new().store();
    let runs = FakeAgents::new(|_, _| Plan::hang(false)).runs;
    let mut h = Harness::new(config(&SESSIONS, |_| {}), store.clone(), runs);
    h.submit("t", "x");
    h.until("the first run", |h| h.starts("t") == 1);
    let first = flags(&h, "t")[0].0.clone().expect("session");
    // The worker dies (nothing more is written); a new one finds the task in flight.
    drop(h);
    let runs = FakeAgents::new(|_, _| success(0.0)).runs;
    let mut h = Harness::new(config(&SESSIONS, |_| {}), store, runs);
    let r = h.wait_result("t");
    assert_eq!(r.status, "completed");
    assert_eq!(flags(&h, "t"), vec![(None, Some(first))], "the reclaimed run resumes");
}

#[test]
fn sessions_off_pass_no_flag() {
    let env = [("AGENT_SESSION_FLAG", ""), ("AGENT_RESUME_FLAG", "")];
    let mut h =
        Harness::start(&env, |_| {}, |_, attempt| if attempt == 1 { failure() } else { success(0.0) });
    h.submit("t", "x");
    let r = h.wait_result("t");
    assert_eq!(flags(&h, "t"), vec![(None, None), (None, None)]);
    assert!(r.runs.iter().all(|r| r.session_id.is_none()));
    assert!(session::fresh_id() != session::fresh_id());
}

#[test]
fn a_task_stopped_by_the_shutdown_resumes_its_session_at_the_next_start() {
    let store = MemSpool::new().store();
    let runs = FakeAgents::new(|_, _| Plan::hang(false)).runs;
    let mut h = Harness::new(config(&SESSIONS, |_| {}), store.clone(), runs);
    h.submit("t", "x");
    h.until("the first run", |h| h.starts("t") == 1);
    let first = flags(&h, "t")[0].0.clone().expect("session");
    h.d.shutdown();
    h.until("drained", |h| h.d.drained());
    h.d.stopped();
    assert_eq!(store.borrow().queued().len(), 1, "re-queued");
    // Not `--session-id` again: the agent has that session, and would refuse to make it anew.
    let runs = FakeAgents::new(|_, _| success(0.0)).runs;
    let mut h = Harness::new(config(&SESSIONS, |_| {}), store, runs);
    assert_eq!(h.wait_result("t").status, "completed");
    assert_eq!(flags(&h, "t"), vec![(None, Some(first))]);
}
