use super::*;
use crate::agent::classify::Cause;

const S: fn(u64) -> Duration = Duration::from_secs;

fn limits() -> Limits {
    Limits {
        max_retries: 3,
        max_task_runs: 10,
        max_task_wall_time: Some(S(3600)),
        repeated_failure_limit: 3,
        max_reclaims: 2,
    }
}

fn failure(reason: &str, code: i32, message: &str) -> Failure {
    Failure { reason: reason.into(), exit_code: Some(code), message: message.into(), ..Failure::default() }
}

/// A state after `attempts` failed attempts, the last ones with these messages.
fn state(attempts: u32, reclaims: u32, messages: &[&str]) -> State {
    State {
        attempts,
        reclaims,
        history: messages.iter().map(|m| failure("exit_code", 1, m)).collect(),
        ..State::default()
    }
}

fn failed(number: u32, permanent: bool) -> Failed<'static> {
    let reason = if permanent { Reason::MaxTurns } else { Reason::ExitCode };
    Failed { number, reason, message: "boom", permanent }
}

fn reason_of(n: &Next) -> Option<Reason> {
    match n {
        Next::Retry => None,
        Next::GiveUp { reason, .. } => Some(*reason),
    }
}

#[test]
fn a_run_is_charged_unless_the_whole_worker_was_held() {
    let table = [
        (Class::Success, Charge::Attempt),
        (Class::Failed(Reason::Timeout), Charge::Attempt),
        (Class::Permanent(Reason::PermissionDenied), Charge::Attempt),
        (Class::RateLimited { reset_at: None }, Charge::Hold),
        (Class::Outage(Cause::Credential), Charge::Hold),
        (Class::Outage(Cause::Network), Charge::Hold),
        (Class::Outage(Cause::Service), Charge::Hold),
    ];
    for (class, want) in table {
        assert_eq!(charge_of(&class), want, "{class:?}");
    }
}

#[test]
fn charging_counts_attempts_or_holds_and_moves_the_charged_time() {
    let doc = br#"{"task_id": "t", "description": "d"}"#;
    let t0 = Instant::now();
    let run = t0 + S(100);
    let failed = Class::Failed(Reason::ExitCode);
    let held = Class::Outage(Cause::Network);
    // (on hold before, class) -> (charge, attempts, uncharged, on hold after, charging from)
    let table = [
        (false, &failed, Charge::Attempt, 2, 0, false, Some(t0)),
        (true, &failed, Charge::Attempt, 2, 0, false, Some(run)),
        (false, &held, Charge::Hold, 1, 1, true, None),
        (true, &held, Charge::Hold, 1, 1, true, None),
    ];
    for (on_hold, class, want, attempts, uncharged, hold_after, since) in table {
        let mut task = Task::parse(doc, "t", "w").expect("task");
        task.state.attempts = 1;
        task.state.on_hold = on_hold;
        task.start_charging(t0);
        assert_eq!(charge(&mut task, class, 2, run), want);
        let got = (task.state.attempts, task.state.uncharged, task.state.on_hold, task.charging_since);
        assert_eq!(got, (attempts, uncharged, hold_after, since), "on hold {on_hold}, {class:?}");
        // A hold keeps the time charged before the run started, and only that.
        let before = if on_hold { 0.0 } else { 100.0 };
        let saved = if hold_after { before } else { 0.0 };
        assert_eq!(task.state.charged_seconds, saved, "on hold {on_hold}, {class:?}");
    }
}

#[test]
fn after_a_failure_retry_or_give_up_by_the_first_limit_reached() {
    let l = limits();
    let (a, b, c) = ("boom at 10:01", "boom at 10:02", "other");
    // (attempt, permanent, state, time charged, expected reason; None: retry)
    let table: Vec<(u32, bool, State, Duration, Option<Reason>)> = vec![
        (1, false, state(1, 0, &[a]), S(1), None),
        (3, false, state(3, 0, &[a, c, b]), S(1), None),
        (4, false, state(4, 0, &[a, c, b, c]), S(1), Some(Reason::ExitCode)),
        (1, true, state(1, 0, &[a]), S(1), Some(Reason::MaxTurns)),
        // The same failure three times (digits aside) stops before MAX_RETRIES.
        (3, false, state(3, 0, &[a, b, a]), S(1), Some(Reason::RepeatedFailure)),
        (2, false, state(2, 0, &[a, b]), S(1), None),
        // Reclaims count as runs toward MAX_TASK_RUNS.
        (2, false, state(2, 8, &[a, c]), S(1), Some(Reason::AttemptLimit)),
        (2, false, state(2, 7, &[a, c]), S(1), None),
        (2, false, state(2, 0, &[a, c]), S(3600), Some(Reason::TimeLimit)),
        (2, false, state(2, 0, &[a, c]), S(3599), None),
        // MAX_RETRIES comes first, with the run's own reason.
        (4, false, state(4, 8, &[a, b, a, b]), S(7200), Some(Reason::ExitCode)),
    ];
    for (number, permanent, st, charged, want) in table {
        let got = after_failure(&failed(number, permanent), &st, charged, &l);
        assert_eq!(reason_of(&got), want, "attempt {number} permanent {permanent} {st:?} {charged:?}");
    }
}

#[test]
fn the_guards_can_be_turned_off() {
    let off = Limits { max_task_runs: 0, max_task_wall_time: None, repeated_failure_limit: 0, ..limits() };
    let st = state(3, 50, &["x", "x", "x"]);
    assert_eq!(after_failure(&failed(3, false), &st, S(1 << 20), &off), Next::Retry);
    let one = Limits { repeated_failure_limit: 1, ..off };
    assert_eq!(after_failure(&failed(3, false), &st, S(1), &one), Next::Retry, "1 is off too");
}

#[test]
fn the_summary_says_why() {
    let l = limits();
    let summary = |n: Next| match n {
        Next::GiveUp { summary, .. } => summary,
        Next::Retry => String::new(),
    };
    assert_eq!(
        summary(after_failure(&failed(4, false), &state(4, 0, &[]), S(1), &l)),
        "gave up after 4 attempt(s): boom"
    );
    assert_eq!(summary(after_failure(&failed(1, true), &state(1, 0, &[]), S(1), &l)), "not retried: boom");
    assert_eq!(
        summary(after_failure(&failed(2, false), &state(2, 8, &[]), S(1), &l)),
        "10 runs (2 attempts, 8 reclaims, 0 uncharged) reached MAX_TASK_RUNS=10; last: boom"
    );
}

#[test]
fn a_reclaimed_task_is_requeued_until_a_limit() {
    let l = limits();
    // (attempts, reclaims, expected reason; None: re-queued)
    let table = [
        (0, 1, None),
        (0, 2, None),
        (0, 3, Some(Reason::ReclaimLimit)),
        (8, 2, Some(Reason::AttemptLimit)),
        (7, 2, None),
        (9, 3, Some(Reason::ReclaimLimit)),
    ];
    for (attempts, reclaims, want) in table {
        let got = match after_reclaim(&state(attempts, reclaims, &[]), &l) {
            Reclaimed::Requeue => None,
            Reclaimed::GiveUp { reason, .. } => Some(reason),
        };
        assert_eq!(got, want, "{attempts} attempts, {reclaims} reclaims");
    }
    let unlimited = Limits { max_task_runs: 0, ..l };
    assert_eq!(after_reclaim(&state(1000, 2, &[]), &unlimited), Reclaimed::Requeue);
}

#[test]
fn only_a_task_not_waiting_for_its_retry_was_running() {
    let now = 1_800_000_000.0;
    let waiting = |at: Option<f64>| State { retry_at: at, ..State::default() };
    assert!(was_running(&waiting(None), now));
    assert!(was_running(&waiting(Some(now - 1.0)), now));
    assert!(was_running(&waiting(Some(now)), now));
    assert!(!was_running(&waiting(Some(now + 1.0)), now));
}

#[test]
fn a_task_read_back_waits_until_its_retry_time_at_most_the_cap() {
    let now = 1_800_000_000.0;
    let cap = S(300);
    let table = [
        (None, None),
        (Some(now - 5.0), None),
        (Some(now), None),
        (Some(now + 10.0), Some(S(10))),
        (Some(now + 1e6), Some(cap)),
        (Some(f64::INFINITY), Some(cap)),
    ];
    for (at, want) in table {
        assert_eq!(retry_wait(at, now, cap), want, "{at:?}");
    }
}

#[test]
fn a_reset_not_ahead_or_absurd_gets_the_default_pause() {
    let now = SystemTime::UNIX_EPOCH + S(1_800_000_000);
    let default = S(300);
    let ahead = now + S(3600);
    assert_eq!(rate_limit_until(Some(ahead), now, default), ahead);
    for reset in
        [None, Some(now), Some(now - S(3600)), Some(SystemTime::UNIX_EPOCH), Some(now + S(400 * 24 * 3600))]
    {
        assert_eq!(rate_limit_until(reset, now, default), now + default, "{reset:?}");
    }
    let huge = S(10 * 365 * 24 * 3600);
    assert_eq!(rate_limit_until(None, now, huge), now + MAX_PAUSE, "the default is bounded too");
}

#[test]
fn the_spend_cap_stops_at_the_cap() {
    for (spent, cap, want) in
        [(0.0, None, false), (1e9, None, false), (4.99, Some(5.0), false), (5.0, Some(5.0), true)]
    {
        assert_eq!(spend_cap_reached(spent, cap), want, "{spent} {cap:?}");
    }
}

#[test]
fn same_failure_ignores_numbers_only() {
    let a = failure("exit_code", 1, "boom at 10:32:01 (pid 4242)");
    let b = failure("exit_code", 1, "boom at 11:02:57 (pid 77)");
    assert!(same_failure(&a, &b));
    assert!(!same_failure(&a, &failure("exit_code", 2, "boom at 10:32:01 (pid 4242)")));
    assert!(!same_failure(&a, &failure("exit_code", 1, "bang at 10:32:01 (pid 4242)")));
    assert!(!same_failure(&a, &failure("timeout", 1, "boom at 10:32:01 (pid 4242)")));
}
