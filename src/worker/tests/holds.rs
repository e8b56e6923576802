//! What holds every start: the breaker after failures, an outage of the agent's service, a
//! rate limit, the spend cap.

use super::*;
use crate::worker::breaker::State;

#[test]
fn the_breaker_opens_holds_new_tasks_and_a_trial_closes_it() {
    let mut h = Harness::start(
        &[("CIRCUIT_BREAKER_THRESHOLD", "2"), ("MAX_RETRIES", "0")],
        |_| {},
        |description, _| if description == "fail" { failure() } else { success(0.0) },
    );
    h.submit("f1", "fail");
    h.submit("f2", "fail");
    h.wait_result("f2");
    let open_until = match h.d.holds.breaker.state() {
        State::Open { until } => until,
        other => panic!("the breaker is {other:?}"),
    };
    h.until("a heartbeat of the open breaker", |h| h.heartbeat().status == "circuit_open");
    h.submit("good", "ok");
    h.until("the task held, then let through", |h| h.starts("good") == 1);
    let started = h.runs.borrow().starts_of("good")[0].at;
    assert!(started >= open_until, "a held task starts only when the breaker half-opens");
    assert_eq!(h.wait_result("good").status, "completed");
    h.until("the breaker closed", |h| h.d.holds.breaker.state() == State::Closed);
    assert_eq!(h.store.borrow().dead_letters.len(), 2, "only the two failures are dead letters");
    assert_eq!(h.heartbeat().circuit_state, "closed");
}

#[test]
fn an_outage_holds_the_queue_and_charges_nothing() {
    let api_up = Rc::new(RefCell::new(false));
    let up = api_up.clone();
    let mut h = Harness::start(
        &[("MAX_RETRIES", "0")],
        |_| {},
        move |_, _| {
            if *up.borrow() {
                success(0.0)
            } else {
                api_error(401)
            }
        },
    );
    h.submit("t1", "one");
    h.until("the outage", |h| h.d.holds.outage.is_some());
    h.submit("t2", "two");
    // Held: each trial fails while the credentials are refused, and nothing is dead-lettered
    // however often it runs (MAX_RETRIES=0 would end a charged task at its first failure).
    h.until("three trials", |h| h.starts("t1") + h.starts("t2") >= 3);
    assert!(h.store.borrow().dead_letters.is_empty());
    assert!(h.result("t1").is_none() && h.result("t2").is_none());
    h.until("a heartbeat telling the cause", |h| {
        h.heartbeat().circuit_reason.as_deref() == Some("credential")
    });
    *api_up.borrow_mut() = true;
    let (r1, r2) = (h.wait_result("t1"), h.wait_result("t2"));
    assert_eq!((r1.status.as_str(), r2.status.as_str()), ("completed", "completed"));
    assert_eq!((r1.attempts, r2.attempts), (1, 1), "the held runs were not attempts");
    assert!(h.d.holds.outage.is_none(), "over once a run reached the service");
    assert_eq!(h.d.holds.breaker.state(), State::Closed);
}

#[test]
fn a_rate_limit_pauses_the_worker_and_the_task_is_not_charged() {
    let limited = Rc::new(RefCell::new(true));
    let l = limited.clone();
    let mut h = Harness::start(
        &[("MAX_RETRIES", "0")],
        |_| {},
        move |description, _| {
            if description == "first" && std::mem::replace(&mut *l.borrow_mut(), false) {
                api_error(429)
            } else {
                success(0.0)
            }
        },
    );
    h.submit("t1", "first");
    h.until("the pause", |h| h.d.holds.paused.is_some());
    let until = h.d.holds.paused.map(|p| p.until).expect("paused");
    h.until("a heartbeat of the pause", |h| h.heartbeat().status == "rate_limited");
    assert_eq!(h.heartbeat().paused_reason.as_deref(), Some("rate_limited"));
    h.submit("t2", "second");
    let (r1, r2) = (h.wait_result("t1"), h.wait_result("t2"));
    assert_eq!((r1.status.as_str(), r2.status.as_str()), ("completed", "completed"));
    assert_eq!(r1.attempts, 1, "the rate-limited run was not an attempt");
    let runs = h.runs.borrow();
    assert!(runs.starts_of("t2")[0].at >= until, "nothing starts while paused");
    assert!(runs.starts_of("t1")[1].at >= until);
}

#[test]
fn the_spend_cap_pauses_the_worker_and_a_restart_remembers_the_spend() {
    let cap = [("WORKER_BUDGET_USD", "1.0"), ("WORKER_BUDGET_WINDOW", "3600")];
    let mut h = Harness::start(&cap, |_| {}, |_, _| success(0.6));
    for id in ["a", "b", "c"] {
        h.submit(id, "spend");
    }
    h.wait_result("b");
    h.until("the spend cap", |h| h.heartbeat().status == "budget_exhausted");
    assert_eq!(h.heartbeat().paused_reason.as_deref(), Some("budget_exhausted"));
    assert!(h.heartbeat().paused_until.is_some_and(|t| t > crate::sys::clock::now_f64() + 3000.0));
    // Turns go by; the third task stays queued.
    let turns_until = Instant::now() + MS(50);
    h.until("a while", |_| Instant::now() >= turns_until);
    assert_eq!(h.starts("c"), 0);
    assert_eq!(h.heartbeat().queue_size, 1);
    // The ledger is in the spool: a new worker over it is paused from the start.
    let (store, runs) = (h.store.clone(), h.runs.clone());
    drop(h);
    let again = Harness::new(config(&cap, |_| {}), store, runs);
    assert!(again.d.holds.paused.is_some(), "the spend survives a restart");
    assert_eq!(again.starts("c"), 0);
}
