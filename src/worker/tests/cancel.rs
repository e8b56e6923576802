//! Cancelling a task through the spool: queued (never started), running (stopped as a
//! timeout stops it), waiting for a retry; its own result, no dead letter, no retry; the
//! request dropped once the result is durable, and kept for a task not held yet.

use super::*;
use crate::runner::supervise::Signal;

fn cancel(h: &Harness, id: &str) {
    h.store.borrow_mut().request_cancel(id);
}

fn requests(h: &Harness) -> usize {
    h.store.borrow().cancels.len()
}

#[test]
fn a_queued_task_is_cancelled_without_running() {
    let mut h = Harness::start(&[], |_| {}, |_, _| Plan::hang(false));
    h.submit("a", "busy");
    h.until("a running", |h| h.starts("a") == 1);
    h.submit("b", "never");
    cancel(&h, "b");
    let r = h.wait_result("b");
    assert_eq!((r.status.as_str(), r.reason.as_deref(), r.attempts), ("cancelled", None, 0));
    assert!(r.message.as_deref().is_some_and(|m| m.contains("cancelled by test")), "{r:?}");
    assert_eq!(h.starts("b"), 0);
    h.until("the request dropped", |h| requests(h) == 0);
    assert!(h.store.borrow().dead_letters.is_empty());
    assert_eq!((h.d.report.stats.cancelled, h.d.report.stats.failed), (1, 0));
}

#[test]
fn a_running_task_is_stopped_like_a_timeout_and_ends_cancelled() {
    let mut h = Harness::start(&[("MAX_RETRIES", "3")], |_| {}, |_, _| Plan::hang(true));
    h.submit("t", "stubborn");
    h.until("t running", |h| h.starts("t") == 1);
    cancel(&h, "t");
    let r = h.wait_result("t");
    assert_eq!(r.status, "cancelled");
    assert_eq!(
        h.runs.borrow().signals,
        vec![(0, Signal::Term), (0, Signal::Kill)],
        "SIGKILL after the grace"
    );
    assert_eq!((r.attempts, r.signal), (1, Some(libc::SIGKILL)));
    assert_eq!(r.runs.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["cancelled"]);
    assert_eq!(h.starts("t"), 1, "not retried");
    assert!(h.store.borrow().dead_letters.is_empty());
    h.until("the request dropped", |h| requests(h) == 0);
    assert_eq!(h.heartbeat().failed, 0);
}

#[test]
fn a_task_waiting_for_its_retry_is_cancelled_at_once() {
    let mut h = Harness::start(
        &[("MAX_RETRIES", "3")],
        |c| c.tuning.max_retry_delay = Duration::from_secs(3600),
        |_, _| failure(),
    );
    h.d.cfg.tuning.initial_retry_delay = Duration::from_secs(3600);
    h.submit("w", "x");
    h.until("w waiting", |h| h.heartbeat().retry_waiting == 1);
    cancel(&h, "w");
    let r = h.wait_result("w");
    assert_eq!((r.status.as_str(), r.attempts), ("cancelled", 1));
    assert_eq!(r.runs.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>(), ["exit_code"]);
    assert_eq!(h.starts("w"), 1);
    assert!(h.store.borrow().claimed().is_empty());
}

#[test]
fn a_request_for_a_task_not_held_yet_is_kept_until_it_is_claimed() {
    let mut h = Harness::start(&[], |_| {}, |_, _| success(0.0));
    cancel(&h, "later");
    h.submit("other", "x");
    h.wait_result("other");
    assert_eq!(requests(&h), 1, "kept: the task may come");
    h.submit("later", "x");
    let r = h.wait_result("later");
    assert_eq!(r.status, "cancelled");
    assert_eq!(h.starts("later"), 0);
    h.until("the request dropped", |h| requests(h) == 0);
    // A request for a task that has its result is moot.
    cancel(&h, "other");
    h.until("the moot request dropped", |h| requests(h) == 0);
    assert_eq!(h.result("other").expect("kept").status, "completed");
}

#[test]
fn a_request_gone_from_the_spool_is_forgotten_at_the_next_listing() {
    let mut h = Harness::start(&[], |_| {}, |_, _| success(0.0));
    cancel(&h, "later");
    h.submit("other", "x");
    h.wait_result("other");
    // Acted on elsewhere (another host of the worker), then its result expired: the listing
    // no longer has the request, and the task of that id queued again runs.
    h.store.borrow_mut().cancels.clear();
    h.d.rescan().expect("listing");
    h.submit("later", "x");
    assert_eq!(h.wait_result("later").status, "completed");
    assert_eq!(h.starts("later"), 1);
}
