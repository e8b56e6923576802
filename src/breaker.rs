//! The circuit breaker: CIRCUIT_BREAKER_THRESHOLD consecutive failed attempts open it; while
//! open no task starts (queued tasks wait, they are not failed); after CIRCUIT_BREAKER_TIMEOUT
//! it is half-open and lets one trial task run, whose success closes it and whose failure opens
//! it again.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl State {
    /// The metric's value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open { .. } => 1,
            State::HalfOpen => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// A change of state, for the journal and the heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Opened,
    HalfOpened,
    Closed,
}

#[derive(Debug)]
pub struct Breaker {
    state: State,
    consecutive: u32,
    trial_running: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { state: State::Closed, consecutive: 0, trial_running: false }
    }
}

impl Breaker {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// When an open breaker turns half-open.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Moves an open breaker whose time is up to half-open.
    pub fn tick(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen;
                self.trial_running = false;
                Some(Transition::HalfOpened)
            }
            _ => None,
        }
    }

    /// Whether a task may start now.
    pub fn may_start(&self) -> bool {
        match self.state {
            State::Closed => true,
            State::HalfOpen => !self.trial_running,
            State::Open { .. } => false,
        }
    }

    /// A task started; in half-open it is the trial.
    pub fn started(&mut self) {
        if self.state == State::HalfOpen {
            self.trial_running = true;
        }
    }

    /// A run ended without an outcome (shutdown): a half-open breaker may try again.
    pub fn abandoned(&mut self) {
        self.trial_running = false;
    }

    pub fn succeeded(&mut self) -> Option<Transition> {
        self.consecutive = 0;
        self.trial_running = false;
        match self.state {
            State::HalfOpen => {
                self.state = State::Closed;
                Some(Transition::Closed)
            }
            _ => None,
        }
    }

    /// Opens now, whatever the count: a fault of the whole worker (its credentials), not of a
    /// task. `Some` when it was not open already.
    pub fn force_open(&mut self, now: Instant, timeout: Duration) -> Option<Transition> {
        self.trial_running = false;
        let was_open = matches!(self.state, State::Open { .. });
        self.state = State::Open { until: now + timeout };
        (!was_open).then_some(Transition::Opened)
    }

    pub fn failed(&mut self, now: Instant, threshold: u32, timeout: Duration) -> Option<Transition> {
        self.consecutive = self.consecutive.saturating_add(1);
        self.trial_running = false;
        let open = match self.state {
            State::Closed => self.consecutive >= threshold,
            State::HalfOpen => true,
            State::Open { .. } => false,
        };
        if open {
            self.state = State::Open { until: now + timeout };
            return Some(Transition::Opened);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(60);

    #[test]
    fn opens_at_threshold_and_success_resets() {
        let now = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.failed(now, 3, T), None);
        assert_eq!(b.failed(now, 3, T), None);
        assert_eq!(b.succeeded(), None);
        assert_eq!(b.failed(now, 3, T), None);
        assert_eq!(b.failed(now, 3, T), None);
        assert_eq!(b.failed(now, 3, T), Some(Transition::Opened));
        assert!(!b.may_start());
        assert_eq!(b.deadline(), Some(now + T));
    }

    #[test]
    fn half_open_allows_one_trial() {
        let now = Instant::now();
        let mut b = Breaker::default();
        b.failed(now, 1, T);
        assert_eq!(b.tick(now), None);
        assert_eq!(b.tick(now + T), Some(Transition::HalfOpened));
        assert!(b.may_start());
        b.started();
        assert!(!b.may_start());
        assert_eq!(b.failed(now + T, 1, T), Some(Transition::Opened));
        assert_eq!(b.tick(now + T + T), Some(Transition::HalfOpened));
        b.started();
        assert_eq!(b.succeeded(), Some(Transition::Closed));
        assert!(b.may_start());
        assert_eq!(b.state().gauge(), 0);
    }

    #[test]
    fn forced_open_holds_and_half_opens_as_usual() {
        let now = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.force_open(now, T), Some(Transition::Opened));
        assert!(!b.may_start());
        assert_eq!(b.force_open(now, T), None, "already open: extended, not announced again");
        assert_eq!(b.tick(now + T), Some(Transition::HalfOpened));
        b.started();
        assert_eq!(b.force_open(now + T, T), Some(Transition::Opened));
    }

    #[test]
    fn abandoned_trial_can_rerun() {
        let now = Instant::now();
        let mut b = Breaker::default();
        b.failed(now, 1, T);
        b.tick(now + T);
        b.started();
        b.abandoned();
        assert!(b.may_start());
    }
}
