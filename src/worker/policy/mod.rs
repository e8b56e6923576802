//! The worker's decisions about a task, as pure functions of the task's state, the run's class
//! and the limits in force: charge the run or hold the task, retry or give up, how long a task
//! read back waits, what a task found in flight at start-up becomes, how long a rate limit
//! pauses the worker. Nothing here reads a clock, logs, or writes: the loop applies what is
//! decided (its breaker, its pause, its spool), on the run path and in recovery alike.

use std::time::{Duration, Instant, SystemTime};

use crate::agent::classify::Class;
use crate::agent::reason::Reason;
use crate::config::Tuning;
use crate::format::task::{Failure, State, Task};

/// The longest pause: a reset further away is taken as nonsense (weekly limits exist, so a
/// week and a day), and RATE_LIMIT_PAUSE is capped to it.
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(8 * 24 * 3600);

/// The limits that end a task, for one task (its own `max_retries` applied).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Limits {
    pub(super) max_retries: u32,
    /// MAX_TASK_RUNS; 0: off.
    pub(super) max_task_runs: u32,
    pub(super) max_task_wall_time: Option<Duration>,
    /// REPEATED_FAILURE_LIMIT; below 2: off.
    pub(super) repeated_failure_limit: u32,
    pub(super) max_reclaims: u32,
}

impl Limits {
    pub(super) fn of(t: &Tuning, task_max_retries: Option<u32>) -> Limits {
        Limits {
            max_retries: task_max_retries.unwrap_or(t.max_retries),
            max_task_runs: t.policy.max_task_runs,
            max_task_wall_time: t.policy.max_task_wall_time,
            repeated_failure_limit: t.policy.repeated_failure_limit,
            max_reclaims: t.max_reclaims,
        }
    }

    /// MAX_TASK_RUNS: whether the runs charged to the task (attempts and reclaims) reached it.
    fn runs_reached(&self, state: &State) -> bool {
        self.max_task_runs > 0 && state.runs() >= self.max_task_runs
    }
}

/// Whether a run is charged to its task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Charge {
    /// An attempt: it counts toward MAX_RETRIES and MAX_TASK_RUNS, its time toward
    /// MAX_TASK_WALL_TIME.
    Attempt,
    /// Not charged at all: the whole worker was held (a rate limit, an outage of the agent's
    /// service), so the task waits for the worker to be let go.
    Hold,
}

/// How a run of this class is charged (a success ends the task; it is charged as it ran).
pub(super) fn charge_of(class: &Class) -> Charge {
    match class {
        Class::Success | Class::Failed(_) | Class::Permanent(_) => Charge::Attempt,
        Class::RateLimited { .. } | Class::Outage(_) => Charge::Hold,
    }
}

/// Counts attempt `number` of `task`, started at `run_started`, as its class says: an attempt
/// (and the task's time charged again from its start, if a hold was under way), or a run not
/// charged (and the time since its start not the task's).
pub(super) fn charge(task: &mut Task, class: &Class, number: u32, run_started: Instant) -> Charge {
    let charge = charge_of(class);
    match charge {
        Charge::Attempt => {
            task.end_hold(run_started);
            task.state.attempts = number;
        }
        Charge::Hold => {
            task.state.uncharged = task.state.uncharged.saturating_add(1);
            task.hold(run_started);
        }
    }
    charge
}

/// What becomes of a task after a charged run that did not succeed.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Next {
    /// Tried again after the backoff.
    Retry,
    /// Given up on: a failed result and a dead letter.
    GiveUp { reason: Reason, summary: String },
}

/// A charged run that did not succeed: attempt `number`, ended for `reason` with `message`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Failed<'a> {
    pub(super) number: u32,
    pub(super) reason: Reason,
    pub(super) message: &'a str,
    /// No retry can help (max turns, max budget, a denied tool).
    pub(super) permanent: bool,
}

/// What follows a charged failure, the task's `state` counting it already (attempts, history),
/// and `charged` the time charged to the task so far.
pub(super) fn after_failure(f: &Failed, state: &State, charged: Duration, limits: &Limits) -> Next {
    if f.permanent {
        return Next::GiveUp { reason: f.reason, summary: format!("not retried: {}", f.message) };
    }
    if f.number > limits.max_retries {
        let summary = format!("gave up after {} attempt(s): {}", f.number, f.message);
        return Next::GiveUp { reason: f.reason, summary };
    }
    runaway(f, state, charged, limits).unwrap_or(Next::Retry)
}

/// The runaway guards: a failure that repeats itself, too many runs, too long charged.
fn runaway(f: &Failed, state: &State, charged: Duration, limits: &Limits) -> Option<Next> {
    let n = limits.repeated_failure_limit as usize;
    if n >= 2 && state.history.len() >= n {
        let last = &state.history[state.history.len() - n..];
        if last.windows(2).all(|w| same_failure(&w[0], &w[1])) {
            let summary = format!("the same failure {n} times in a row: {}", f.message);
            return Some(Next::GiveUp { reason: Reason::RepeatedFailure, summary });
        }
    }
    if limits.runs_reached(state) {
        let summary = format!(
            "{} runs ({} attempts, {} reclaims, {} uncharged) reached MAX_TASK_RUNS={}; last: {}",
            state.runs(),
            state.attempts,
            state.reclaims,
            state.uncharged,
            limits.max_task_runs,
            f.message
        );
        return Some(Next::GiveUp { reason: Reason::AttemptLimit, summary });
    }
    // Time charged, on the monotonic clock: a step of the wall clock does not count, nor does
    // time held by an outage or a rate limit.
    let limit = limits.max_task_wall_time?;
    (charged >= limit).then(|| Next::GiveUp {
        reason: Reason::TimeLimit,
        summary: format!(
            "still failing after {} s held by a worker since its first start (MAX_TASK_WALL_TIME={} s); last: {}",
            charged.as_secs(),
            limit.as_secs(),
            f.message
        ),
    })
}

/// Whether two failures are "the same": reason, exit status, signal and message, with runs of
/// digits (times, ids, counts) taken as equal.
pub(super) fn same_failure(a: &Failure, b: &Failure) -> bool {
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

/// Whether a task found in flight at start-up was running when the daemon died (its run is
/// lost: a reclaim) rather than waiting for its retry time (`now`: seconds since the epoch).
pub(super) fn was_running(state: &State, now: f64) -> bool {
    !state.retry_at.is_some_and(|t| t > now)
}

/// What becomes of a task found in flight at start-up, its reclaim counted already.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Reclaimed {
    /// Back to the queue, its state saved.
    Requeue,
    /// Not run again: a failed result and a dead letter.
    GiveUp { reason: Reason, message: String },
}

pub(super) fn after_reclaim(state: &State, limits: &Limits) -> Reclaimed {
    if state.reclaims > limits.max_reclaims {
        let message = format!(
            "found in flight after the daemon died {} times (MAX_RECLAIMS={}); not run again",
            state.reclaims, limits.max_reclaims
        );
        Reclaimed::GiveUp { reason: Reason::ReclaimLimit, message }
    } else if limits.runs_reached(state) {
        let message = format!(
            "{} runs, reclaims included, reached MAX_TASK_RUNS={}; not run again",
            state.runs(),
            limits.max_task_runs
        );
        Reclaimed::GiveUp { reason: Reason::AttemptLimit, message }
    } else {
        Reclaimed::Requeue
    }
}

/// How long a task read back still waits for its retry, `retry_at` and `now` in seconds since
/// the epoch: until its `retry_at`, but never more than `cap` (MAX_RETRY_DELAY). `retry_at` is
/// wall-clock time, written before a restart; if the clock stepped back since, it lies too far
/// ahead.
pub(super) fn retry_wait(retry_at: Option<f64>, now: f64, cap: Duration) -> Option<Duration> {
    let secs = retry_at? - now;
    (secs > 0.0).then(|| Duration::try_from_secs_f64(secs).map_or(cap, |d| d.min(cap)))
}

/// When a usage or rate limit whose reset the agent gave as `reset` ends. A reset that is not
/// ahead (a host clock ahead of the API's, a stale header), none at all, or one further than
/// MAX_PAUSE gets the default pause `default` (RATE_LIMIT_PAUSE), itself at most MAX_PAUSE:
/// a reset in the past must not let the queue burn through its runs.
pub(super) fn rate_limit_until(reset: Option<SystemTime>, now: SystemTime, default: Duration) -> SystemTime {
    match reset {
        Some(at) if at > now && at <= now + MAX_PAUSE => at,
        _ => now + default.min(MAX_PAUSE),
    }
}

/// Whether the spend within the window stops the worker (WORKER_BUDGET_USD).
pub(super) fn spend_cap_reached(spent: f64, cap: Option<f64>) -> bool {
    cap.is_some_and(|cap| spent >= cap)
}

#[cfg(test)]
mod tests;
