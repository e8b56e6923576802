//! Outages of the agent's service (its credentials, the network, the API itself), held the
//! way Postfix holds its deferred queue: no task is charged anything (not an attempt, not a
//! run toward MAX_TASK_RUNS, not wall time toward MAX_TASK_WALL_TIME); the circuit breaker
//! holds the queue and lets one trial task run per CIRCUIT_BREAKER_TIMEOUT, doubling up to
//! CIRCUIT_BREAKER_MAX_TIMEOUT; one journal entry at the start names the cause and what to
//! do, one at the end says how long it lasted; when it ends, every held task runs.
//!
//! Usage and rate limits hold the worker the same way, but until their reset ([`super::pause`]).

use std::time::{Instant, SystemTime};

use super::outcome::Attempt;
use super::policy;
use super::Daemon;
use crate::agent::classify::{Cause, Verdict};
use crate::agent::reason::Reason;
use crate::log::{ids, Level};
use crate::metrics::End;
use crate::sys::clock;

/// An outage under way.
#[derive(Clone, Debug)]
pub(super) struct Outage {
    pub(super) cause: Cause,
    since: SystemTime,
    /// Runs that ended in this outage (the first included).
    runs: u32,
}

impl Daemon {
    /// A run ended in an outage: the breaker holds the queue, and the task waits for the next
    /// trial, charged nothing.
    pub(super) fn outage(&mut self, a: Attempt, verdict: Verdict, cause: Cause) {
        match &mut self.holds.outage {
            Some(o) if o.cause == cause => o.runs += 1,
            _ => self.outage_started(cause, &verdict),
        }
        if let Some(t) = self.holds.breaker.force_open(Instant::now()) {
            self.breaker_changed(t);
        }
        let until = self.holds.breaker.deadline().unwrap_or_else(Instant::now);
        self.hold(a, cause.reason(), verdict, until);
    }

    /// The one entry at the start of an outage (or when its cause changes).
    fn outage_started(&mut self, cause: Cause, verdict: &Verdict) {
        let was = self.holds.outage.replace(Outage { cause, since: SystemTime::now(), runs: 1 });
        let t = &self.cfg.tuning;
        let message = format!(
            "the agent's service is unavailable ({}): no task starts and none is charged; one task is tried every {} s, backing off to {} s; to fix: {}",
            cause.as_str(),
            t.breaker_timeout.as_secs_f64(),
            t.breaker_max_timeout.max(t.breaker_timeout).as_secs_f64(),
            cause.advice()
        );
        let level = if cause == Cause::Credential { Level::Error } else { Level::Warning };
        let mut fields = vec![
            ("MESSAGE_ID", ids::OUTAGE_STARTED.to_string()),
            ("CAUSE", cause.as_str().to_string()),
            ("ERROR", verdict.message.clone()),
        ];
        if let Some(was) = was {
            fields.push(("PREVIOUS_CAUSE", was.cause.as_str().to_string()));
        }
        self.log_fields(level, &message, &fields);
    }

    /// A run reached the agent's service (a success, a permanent failure, a rate limit): an
    /// outage under way is over, and every held task may run.
    pub(super) fn outage_over(&mut self) {
        let Some(o) = self.holds.outage.take() else { return };
        let lasted = SystemTime::now().duration_since(o.since).unwrap_or_default();
        self.log.info(
            "the agent's service is available again: held tasks start",
            &[
                ("MESSAGE_ID", &ids::OUTAGE_ENDED),
                ("CAUSE", &o.cause.as_str()),
                ("DURATION_S", &format!("{:.0}", lasted.as_secs_f64())),
                ("UNCHARGED_RUNS", &o.runs),
            ],
        );
        if self.holds.breaker.close().is_some() {
            self.stage_heartbeat();
        }
        // Held tasks wait for the breaker's deadline: they may start now.
        let now = Instant::now();
        let held: Vec<_> = std::mem::take(&mut self.flight.waiting).into_iter().collect();
        for ((at, seq), w) in held {
            let at = if w.task.state.on_hold { at.min(now) } else { at };
            self.flight.waiting.insert((at, seq), w);
        }
    }

    /// The task waits until `until`, its run not charged: no attempt, no run, and the time
    /// held is not counted against MAX_TASK_WALL_TIME.
    pub(super) fn hold(&mut self, mut a: Attempt, reason: Reason, verdict: Verdict, until: Instant) {
        self.holds.breaker.abandoned();
        let started = a.started();
        policy::charge(&mut a.task, &verdict.class, a.number, started);
        Self::remember(&mut a, reason, &verdict);
        let wait = until.saturating_duration_since(Instant::now());
        a.task.state.retry_at = Some(clock::now_f64() + wait.as_secs_f64());
        // One line per outage or pause is enough: the runs of held tasks are not news.
        self.log.debug(
            "run not charged: the task waits for the worker to be let go",
            &[("TASK_ID", &a.task.id), ("REASON", &reason), ("WAIT_MS", &wait.as_millis())],
        );
        self.save_and_wait(a, End::Uncharged { reason }, until);
    }
}
