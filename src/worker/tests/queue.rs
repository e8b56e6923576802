//! The queue's way through the loop: retries against new tasks, a backend that hands out its
//! own next entry, the stop sequence of a run, the drain at shutdown.

use super::*;
use crate::runner::supervise::Signal;

#[test]
fn due_retries_and_new_tasks_take_turns() {
    // `a` fails twice, `b` once; every retry is due at once (INITIAL_RETRY_DELAY=0).
    let env = [("MAX_RETRIES", "3"), ("REPEATED_FAILURE_LIMIT", "0")];
    let mut h = Harness::start(
        &env,
        |_| {},
        |description, attempt| match (description, attempt) {
            ("a", 1 | 2) | ("b", 1) => failure(),
            _ => success(0.0),
        },
    );
    for id in ["a", "b", "c", "d", "e"] {
        h.submit(id, id);
    }
    h.wait_result("e");
    let order: Vec<String> =
        h.runs.borrow().started.iter().map(|s| format!("{}{}", s.task_id, s.attempt)).collect();
    // One slot: whenever both a retry and a new task could start, they alternate.
    assert_eq!(order, ["a1", "a2", "b1", "a3", "c1", "b2", "d1", "e1"]);
    for id in ["a", "b", "c", "d", "e"] {
        assert_eq!(h.result(id).expect("result").status, "completed", "{id}");
    }
}

#[test]
fn a_claim_that_hands_out_another_entry_forgets_it_as_queued() {
    let mut h = Harness::start(&[], |_| {}, |_, _| Plan::hang(false));
    h.submit("a", "x");
    h.submit("b", "x");
    // Another consumer takes `a` before this worker claims: the stream hands out `b`.
    h.store.borrow_mut().take_elsewhere();
    h.until("b started", |h| h.starts("b") == 1);
    assert_eq!(h.starts("a"), 0);
    assert_eq!(h.d.queued(), 0, "neither a nor b is still taken for queued");
    h.until("a heartbeat of it", |h| h.heartbeat().active_tasks == 1);
    assert_eq!(h.heartbeat().queue_size, 0);
}

#[test]
fn a_run_past_its_time_limit_gets_sigterm_then_sigkill_and_ends_as_a_timeout() {
    let mut h =
        Harness::start(&[("MAX_RETRIES", "0")], |c| c.tuning.task_timeout = MS(30), |_, _| Plan::hang(true));
    h.submit("t", "stubborn");
    let r = h.wait_result("t");
    assert_eq!((r.status.as_str(), r.reason.as_deref()), ("failed", Some("timeout")));
    assert_eq!(h.runs.borrow().signals, vec![(0, Signal::Term), (0, Signal::Kill)]);
    assert_eq!(r.signal, Some(libc::SIGKILL));
    assert!(r.message.as_deref().is_some_and(|m| m.contains("time limit")), "{r:?}");
}

#[test]
fn a_shutdown_stops_what_still_runs_after_the_grace_and_requeues_it_uncharged() {
    let mut h = Harness::start(&[], |_| {}, |_, _| Plan::hang(false));
    h.submit("t", "long");
    h.until("t started", |h| h.starts("t") == 1);
    h.d.shutdown();
    h.until("drained", |h| h.d.drained());
    assert_eq!(h.runs.borrow().signals, vec![(0, Signal::Term)]);
    assert!(h.result("t").is_none() && h.store.borrow().dead_letters.is_empty());
    assert_eq!(h.store.borrow().queued().len(), 1, "back in the queue");
    let bytes = h.store.borrow().queued();
    assert_eq!(bytes[0].lossy(), "t");
    h.d.stopped();
    assert_eq!(h.heartbeat().status, "stopped");
}
