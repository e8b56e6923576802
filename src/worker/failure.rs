//! Runs that did not succeed, by class (see `agent::classify`): charged and then retried after
//! a backoff or given up on, as [`super::policy`] decides; or not charged at all when the
//! worker itself is held (a rate limit here; an outage of the agent's service in
//! [`super::outage`]).

use std::time::{Instant, SystemTime};

use super::outcome::Attempt;
use super::pause::Why;
use super::policy;
use super::Daemon;
use crate::agent::classify::Verdict;
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

    /// A failed attempt (transient or not): the breaker counts it.
    pub(super) fn failed(&mut self, a: Attempt, reason: Reason, verdict: Verdict) {
        let threshold = self.cfg.tuning.breaker_threshold;
        if let Some(tr) = self.holds.breaker.failed(Instant::now(), threshold) {
            self.breaker_changed(tr);
        }
        self.charged_failure(a, reason, verdict, false);
    }

    /// No retry can help (max turns, max budget, structured output, a denied tool): a dead
    /// letter now. The agent itself worked, so the breaker counts it as a success.
    pub(super) fn permanent(&mut self, a: Attempt, reason: Reason, verdict: Verdict) {
        if let Some(t) = self.holds.breaker.succeeded() {
            self.breaker_changed(t);
        }
        self.outage_over();
        self.charged_failure(a, reason, verdict, true);
    }

    /// Charges a run that did not succeed to its task, then retries it after its backoff or
    /// gives up on it, as [`policy::after_failure`] decides.
    fn charged_failure(&mut self, mut a: Attempt, reason: Reason, verdict: Verdict, permanent: bool) {
        let started = a.started();
        policy::charge(&mut a.task, &verdict.class, a.number, started);
        Self::remember(&mut a, reason, &verdict);
        let t = &self.cfg.tuning;
        let limits = policy::Limits::of(t, a.task.max_retries);
        let f = policy::Failed { number: a.number, reason, message: &verdict.message, permanent };
        if let policy::Next::GiveUp { reason, summary } =
            policy::after_failure(&f, &a.task.state, a.task.charged(), &limits)
        {
            return self.give_up(a, reason, summary, verdict.message);
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
        fields.push(("ERROR", verdict.message));
        self.log_fields(Level::Warning, "attempt failed; retrying", &fields);
        self.save_and_wait(a, End::Retried { reason }, Instant::now() + delay);
    }

    /// A usage or rate limit: the API answered, so an outage is over, and the worker pauses
    /// until the reset ([`Daemon::rate_limit_until`]); the task waits, its run not charged.
    pub(super) fn rate_limited(&mut self, a: Attempt, verdict: Verdict, reset_at: Option<SystemTime>) {
        self.outage_over();
        let wall = self.rate_limit_until(reset_at, SystemTime::now());
        self.pause(Why::RateLimit, wall, &verdict.message);
        let until = self.holds.paused.map_or_else(Instant::now, |p| p.until);
        self.hold(a, Reason::RateLimited, verdict, until);
    }

    /// Saves the task's new state durably and keeps it waiting until `until`.
    pub(super) fn save_and_wait(&mut self, a: Attempt, end: End, until: Instant) {
        let recorded = Recorded { end, run: Self::run_of(&a) };
        self.flight.retrying.entry(a.claim.key.clone()).or_default().push_back(recorded);
        self.spool.stage(Op::SaveState {
            claim: a.claim.clone(),
            task: a.task.clone(),
            queued_at: a.queued_at,
        });
        if self.spool.keeps_retries() {
            // The spool keeps it until its time (an engine: on its own clock), then any host
            // of the worker takes it; it is no longer this one's.
            self.flight.ids.remove(&a.task.id);
            return;
        }
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
