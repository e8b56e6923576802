//! Runs that did not succeed, by class (see `agent::classify`): retried after a backoff until
//! the retries are spent or a runaway guard stops it; dead-lettered at once when no retry can
//! help; or not charged at all when the worker itself is held (a rate limit here; an outage
//! of the agent's service in [`super::outage`]).

use std::time::{Instant, SystemTime};

use super::outcome::Attempt;
use super::pause::Why;
use super::Daemon;
use crate::agent::classify::{Class, Verdict};
use crate::agent::reason::Reason;
use crate::format::task::Failure;
use crate::log::{ids, Level};
use crate::metrics::{End, Recorded};
use crate::runner::Exit;
use crate::spool::Op;
use crate::sys::clock;
use crate::worker::retry;

/// Failures kept in a task's history (the oldest are dropped).
const HISTORY_KEPT: usize = 50;

/// Whether two failures are "the same": reason, exit status, signal and message, with runs of
/// digits (times, ids, counts) taken as equal.
fn same_failure(a: &Failure, b: &Failure) -> bool {
    let shape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        let mut in_digits = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('#');
                }
                in_digits = true;
            } else {
                in_digits = false;
                out.push(c);
            }
        }
        out
    };
    a.reason == b.reason
        && a.exit_code == b.exit_code
        && a.signal == b.signal
        && shape(&a.message) == shape(&b.message)
}

impl Daemon {
    /// Adds this run to the task's history.
    pub(super) fn remember(a: &mut Attempt, reason: Reason, verdict: &Verdict) {
        let (exit_code, signal) = match a.exit {
            Some(Exit::Code(c)) => (Some(c), None),
            Some(Exit::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        a.task.state.history.push(Failure {
            attempt: a.number,
            reason: reason.as_str().into(),
            message: verdict.message.clone(),
            exit_code,
            signal,
            started_at: clock::rfc3339(a.started_wall),
            finished_at: clock::rfc3339_now(),
            duration_seconds: a.duration.as_secs_f64(),
            stderr_tail: a.captured.as_ref().map_or_else(String::new, |c| c.stderr_tail.clone()),
        });
        let excess = a.task.state.history.len().saturating_sub(HISTORY_KEPT);
        a.task.state.history.drain(..excess);
    }

    /// The runaway guards: a failure that repeats itself, too many runs, too long since the
    /// first start. `Some((reason, message))` when one stops the task.
    fn runaway(&self, a: &Attempt, verdict: &Verdict) -> Option<(Reason, String)> {
        let p = &self.cfg.tuning.policy;
        let state = &a.task.state;
        let n = p.repeated_failure_limit as usize;
        if matches!(verdict.class, Class::Failed(_)) && n >= 2 && state.history.len() >= n {
            let last = &state.history[state.history.len() - n..];
            if last.windows(2).all(|w| same_failure(&w[0], &w[1])) {
                return Some((
                    Reason::RepeatedFailure,
                    format!("the same failure {n} times in a row: {}", verdict.message),
                ));
            }
        }
        if p.max_task_runs > 0 && state.runs() >= p.max_task_runs {
            return Some((
                Reason::AttemptLimit,
                format!(
                    "{} runs ({} attempts, {} reclaims, {} uncharged) reached MAX_TASK_RUNS={}; last: {}",
                    state.runs(),
                    state.attempts,
                    state.reclaims,
                    state.uncharged,
                    p.max_task_runs,
                    verdict.message
                ),
            ));
        }
        // Time charged, on the monotonic clock: a step of the wall clock does not count, nor
        // does time held by an outage or a rate limit.
        if let Some(limit) = p.max_task_wall_time {
            let age = a.task.charged();
            if age >= limit {
                return Some((
                    Reason::TimeLimit,
                    format!(
                        "still failing after {} s held by a worker since its first start (MAX_TASK_WALL_TIME={} s); last: {}",
                        age.as_secs(),
                        limit.as_secs(),
                        verdict.message
                    ),
                ));
            }
        }
        None
    }

    /// A failed attempt (transient or not): retried after its backoff, or given up on.
    pub(super) fn failed(&mut self, mut a: Attempt, reason: Reason, verdict: Verdict) {
        let t = &self.cfg.tuning;
        if let Some(tr) = self.breaker.failed(Instant::now(), t.breaker_threshold) {
            self.breaker_changed(tr);
        }
        a.task.end_hold(a.started());
        a.task.state.attempts = a.number;
        Self::remember(&mut a, reason, &verdict);
        let t = &self.cfg.tuning;
        let max_retries = a.task.max_retries.unwrap_or(t.max_retries);
        if a.number > max_retries {
            let summary = format!("gave up after {} attempt(s): {}", a.number, verdict.message);
            return self.give_up(a, reason, summary, verdict.message);
        }
        if let Some((reason, message)) = self.runaway(&a, &verdict) {
            return self.give_up(a, reason, message, verdict.message);
        }
        let delay = retry::delay(
            a.number,
            t.initial_retry_delay,
            t.retry_backoff,
            t.max_retry_delay,
            fastrand::f64(),
        );
        a.task.state.retry_at = Some(clock::now_f64() + delay.as_secs_f64());
        let mut fields = vec![("MESSAGE_ID", ids::RETRY_SCHEDULED.to_string())];
        fields.extend(Self::fields(&a, Some(reason)));
        fields.push(("RETRY_IN_MS", delay.as_millis().to_string()));
        fields.push(("ERROR", verdict.message.clone()));
        self.log_fields(Level::Warning, "attempt failed; retrying", &fields);
        let end = End::Retried { reason };
        self.save_and_wait(a, end, Instant::now() + delay);
    }

    /// No retry can help (max turns, max budget, structured output, a denied tool): a dead
    /// letter now. The agent itself worked, so the breaker counts it as a success.
    pub(super) fn permanent(&mut self, mut a: Attempt, reason: Reason, verdict: Verdict) {
        if let Some(t) = self.breaker.succeeded() {
            self.breaker_changed(t);
        }
        self.outage_over();
        a.task.end_hold(a.started());
        a.task.state.attempts = a.number;
        Self::remember(&mut a, reason, &verdict);
        let summary = format!("not retried: {}", verdict.message);
        self.give_up(a, reason, summary, verdict.message);
    }

    /// A usage or rate limit: the API answered, so an outage is over, and the worker pauses
    /// until the reset ([`Daemon::rate_limit_until`]); the task waits, its run not charged.
    pub(super) fn rate_limited(&mut self, a: Attempt, verdict: Verdict, reset_at: Option<SystemTime>) {
        self.outage_over();
        let wall = self.rate_limit_until(reset_at, SystemTime::now());
        self.pause(Why::RateLimit, wall, &verdict.message);
        let until = self.paused.map_or_else(Instant::now, |p| p.until);
        self.hold(a, Reason::RateLimited, verdict, until);
    }

    /// Saves the task's new state durably and keeps it waiting until `until`.
    pub(super) fn save_and_wait(&mut self, a: Attempt, end: End, until: Instant) {
        let recorded = Recorded { end, run: Self::run_of(&a) };
        self.retrying.entry(a.claim.key.clone()).or_default().push_back(recorded);
        self.spool.stage(Op::SaveState {
            claim: a.claim.clone(),
            task: a.task.clone(),
            queued_at: a.queued_at,
        });
        self.wait_until(a.claim, a.task, a.queued_at, until);
    }

    /// The task's end: a failed result and a dead letter with `reason`.
    fn give_up(&mut self, a: Attempt, reason: Reason, summary: String, error: String) {
        let result = self.result(&a, Some((reason, &summary)));
        let mut fields = Self::fields(&a, Some(reason));
        fields.push(("ERROR", error));
        let run = Self::run_of(&a);
        self.dead_letter(a.claim, a.task, reason, summary, Some(result), fields, run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(reason: &str, code: i32, message: &str) -> Failure {
        Failure {
            reason: reason.into(),
            exit_code: Some(code),
            message: message.into(),
            ..Failure::default()
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
}
