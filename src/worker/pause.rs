//! Whole-worker pauses: after a usage or rate limit (until its reset), and when the worker's
//! spend cap (WORKER_BUDGET_USD per WORKER_BUDGET_WINDOW) is reached. While paused no task
//! starts; queued and waiting tasks keep their places and are not charged.
//!
//! The spend ledger is kept in minute buckets and saved through the spool, so a restart
//! does not forget what was spent.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::policy;
use super::state::WorkerState;
use super::Daemon;
use crate::log::ids;
use crate::spool::Op;
use crate::sys::clock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    RateLimit,
    Budget,
}

impl Why {
    /// The worker's state while paused.
    pub(super) fn state(self) -> WorkerState {
        match self {
            Why::RateLimit => WorkerState::RateLimited,
            Why::Budget => WorkerState::BudgetExhausted,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Pause {
    pub(super) until: Instant,
    pub(super) until_wall: SystemTime,
    pub(super) why: Why,
}

/// Spend per minute (epoch minute → US dollars), oldest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Ledger {
    minutes: VecDeque<(u64, f64)>,
}

impl Ledger {
    pub(super) fn from_bytes(bytes: &[u8]) -> Ledger {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    fn add(&mut self, at: f64, usd: f64) {
        let minute = (at / 60.0) as u64;
        match self.minutes.back_mut() {
            Some((m, sum)) if *m == minute => *sum += usd,
            _ => self.minutes.push_back((minute, usd)),
        }
    }

    /// Drops what is older than the window; returns what is left.
    fn within(&mut self, now: f64, window: Duration) -> f64 {
        let oldest = ((now - window.as_secs_f64()) / 60.0).max(0.0) as u64;
        while self.minutes.front().is_some_and(|(m, _)| *m < oldest) {
            self.minutes.pop_front();
        }
        self.minutes.iter().map(|(_, usd)| usd).sum()
    }

    /// When enough of the spend has left the window for the total to be under `cap`.
    fn under_cap_at(&self, cap: f64, window: Duration) -> f64 {
        let mut total: f64 = self.minutes.iter().map(|(_, usd)| usd).sum();
        for (minute, usd) in &self.minutes {
            total -= usd;
            if total < cap {
                return (minute + 1) as f64 * 60.0 + window.as_secs_f64();
            }
        }
        clock::now_f64()
    }
}

impl Daemon {
    /// [`policy::rate_limit_until`] with this worker's RATE_LIMIT_PAUSE.
    pub(super) fn rate_limit_until(&self, reset: Option<SystemTime>, now: SystemTime) -> SystemTime {
        policy::rate_limit_until(reset, now, self.cfg.tuning.policy.rate_limit_pause)
    }

    /// Pauses the worker until `until_wall` (extending a pause that ends sooner).
    pub(super) fn pause(&mut self, why: Why, until_wall: SystemTime, detail: &str) {
        let now_wall = SystemTime::now();
        let wait = until_wall.duration_since(now_wall).unwrap_or(Duration::ZERO).min(policy::MAX_PAUSE);
        let until = Instant::now() + wait;
        if self.holds.paused.is_some_and(|p| p.until >= until) {
            return;
        }
        let first = self.holds.paused.is_none();
        self.holds.paused = Some(Pause { until, until_wall: now_wall + wait, why });
        self.report.metrics.set_paused(why == Why::RateLimit, clock::epoch_f64(now_wall + wait));
        let until_text = clock::rfc3339(now_wall + wait);
        let message = match why {
            Why::RateLimit => "usage or rate limit: no task starts until the reset",
            Why::Budget => "spend cap reached: no task starts until older spend leaves the window",
        };
        let fields: [crate::log::Field; 4] = [
            ("MESSAGE_ID", &ids::WORKER_PAUSED),
            ("PAUSED_UNTIL", &until_text),
            ("REASON", &why.state()),
            ("ERROR", &detail),
        ];
        if first {
            self.log.warn(message, &fields);
        } else {
            self.log.info("pause extended", &fields);
        }
        self.stage_heartbeat();
    }

    /// The pause's timer: resume when it is over (a spend cap still reached pauses again).
    pub(super) fn end_pause(&mut self, now: Instant) {
        let Some(p) = self.holds.paused else { return };
        if now < p.until {
            return;
        }
        self.holds.paused = None;
        self.report.metrics.set_paused(true, 0.0);
        self.log.info(
            "pause over: tasks start again",
            &[("MESSAGE_ID", &ids::WORKER_RESUMED), ("REASON", &p.why.state())],
        );
        self.check_budget();
        self.stage_heartbeat();
    }

    /// Counts an agent run's reported cost against the worker's spend cap.
    pub(super) fn spend(&mut self, usd: f64) {
        if self.cfg.tuning.policy.worker_budget_usd.is_none() || !(usd.is_finite() && usd > 0.0) {
            return;
        }
        self.holds.ledger.add(clock::now_f64(), usd);
        self.spool.stage(Op::Ledger(serde_json::to_vec(&self.holds.ledger).unwrap_or_default()));
        self.check_budget();
    }

    /// Pauses when the spend within the window has reached the cap.
    pub(super) fn check_budget(&mut self) {
        let Some(cap) = self.cfg.tuning.policy.worker_budget_usd else { return };
        let window = self.cfg.tuning.policy.worker_budget_window;
        let spent = self.holds.ledger.within(clock::now_f64(), window);
        if policy::spend_cap_reached(spent, Some(cap)) {
            let at = self.holds.ledger.under_cap_at(cap, window);
            let until = clock::from_epoch_f64(at).unwrap_or_else(SystemTime::now);
            self.pause(
                Why::Budget,
                until,
                &format!("spent {spent:.4} USD of WORKER_BUDGET_USD={cap} in the window"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_window_and_release_time() {
        let mut l = Ledger::default();
        let t0 = 1_800_000_000.0;
        l.add(t0, 1.0);
        l.add(t0 + 10.0, 0.5);
        l.add(t0 + 120.0, 2.0);
        let w = Duration::from_secs(3600);
        assert_eq!(l.within(t0 + 130.0, w), 3.5);
        // Under a cap of 3 once the first minute (1.5) has left the window.
        let first_minute = (t0 / 60.0) as u64;
        assert_eq!(l.under_cap_at(3.0, w), (first_minute + 1) as f64 * 60.0 + 3600.0);
        assert_eq!(l.within(t0 + 3600.0 + 120.0, w), 2.0, "old minutes dropped");
        let back = Ledger::from_bytes(&serde_json::to_vec(&l).expect("json"));
        assert_eq!(back, l);
        assert_eq!(Ledger::from_bytes(b"garbage"), Ledger::default());
    }
}
