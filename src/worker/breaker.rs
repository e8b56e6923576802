//! The circuit breaker: CIRCUIT_BREAKER_THRESHOLD consecutive failed attempts open it; while
//! open no task starts (queued tasks wait, they are not failed); after CIRCUIT_BREAKER_TIMEOUT
//! it is half-open and lets one trial task run, whose success closes it and whose failure opens
//! it again. Each failed trial in a row doubles the time it stays open, up to a cap
//! (CIRCUIT_BREAKER_MAX_TIMEOUT); closing it starts again from CIRCUIT_BREAKER_TIMEOUT.

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
    /// Failed trials in a row since it last closed: the backoff's exponent.
    reopens: u32,
    timeout: Duration,
    max_timeout: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new(Duration::from_secs(60), Duration::from_secs(600))
    }
}

impl Breaker {
    pub fn new(timeout: Duration, max_timeout: Duration) -> Breaker {
        let mut b = Breaker {
            state: State::Closed,
            consecutive: 0,
            trial_running: false,
            reopens: 0,
            timeout,
            max_timeout,
        };
        b.configure(timeout, max_timeout);
        b
    }

    /// New timings (a reload); an open breaker keeps its current deadline.
    pub fn configure(&mut self, timeout: Duration, max_timeout: Duration) {
        self.timeout = timeout;
        self.max_timeout = max_timeout.max(timeout);
    }

    /// How long it stays open this time: the timeout doubled per failed trial, capped.
    pub fn open_time(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.reopens.min(31));
        self.timeout.saturating_mul(factor).min(self.max_timeout)
    }

    fn open(&mut self, now: Instant) {
        if self.state == State::HalfOpen {
            self.reopens = self.reopens.saturating_add(1);
        }
        self.state = State::Open { until: now + self.open_time() };
    }

    /// Half-opens now if open (an operator changed something: try at once).
    pub fn try_now(&mut self, now: Instant) {
        if let State::Open { .. } = self.state {
            self.state = State::Open { until: now };
        }
    }

    /// Closes at once, whatever its state: the outage that held it is over.
    pub fn close(&mut self) -> Option<Transition> {
        self.consecutive = 0;
        self.reopens = 0;
        self.trial_running = false;
        let was_closed = self.state == State::Closed;
        self.state = State::Closed;
        (!was_closed).then_some(Transition::Closed)
    }

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
                self.reopens = 0;
                Some(Transition::Closed)
            }
            _ => None,
        }
    }

    /// Opens now, whatever the count: a fault of the whole worker (an outage of the agent's
    /// service), not of a task. An open breaker keeps its deadline (runs started before the
    /// outage end one after the other). `Some` when it was not open already.
    pub fn force_open(&mut self, now: Instant) -> Option<Transition> {
        self.trial_running = false;
        if matches!(self.state, State::Open { .. }) {
            return None;
        }
        self.open(now);
        Some(Transition::Opened)
    }

    pub fn failed(&mut self, now: Instant, threshold: u32) -> Option<Transition> {
        self.consecutive = self.consecutive.saturating_add(1);
        self.trial_running = false;
        let open = match self.state {
            State::Closed => self.consecutive >= threshold,
            State::HalfOpen => true,
            State::Open { .. } => false,
        };
        if open {
            self.open(now);
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
        let mut b = Breaker::new(T, 4 * T);
        assert_eq!(b.failed(now, 3), None);
        assert_eq!(b.failed(now, 3), None);
        assert_eq!(b.succeeded(), None);
        assert_eq!(b.failed(now, 3), None);
        assert_eq!(b.failed(now, 3), None);
        assert_eq!(b.failed(now, 3), Some(Transition::Opened));
        assert!(!b.may_start());
        assert_eq!(b.deadline(), Some(now + T));
    }

    #[test]
    fn half_open_allows_one_trial() {
        let now = Instant::now();
        let mut b = Breaker::new(T, 4 * T);
        b.failed(now, 1);
        assert_eq!(b.tick(now), None);
        assert_eq!(b.tick(now + T), Some(Transition::HalfOpened));
        assert!(b.may_start());
        b.started();
        assert!(!b.may_start());
        assert_eq!(b.failed(now + T, 1), Some(Transition::Opened));
        assert_eq!(b.tick(now + T + T), None, "a failed trial doubles the wait");
        assert_eq!(b.tick(now + T + 2 * T), Some(Transition::HalfOpened));
        b.started();
        assert_eq!(b.succeeded(), Some(Transition::Closed));
        assert!(b.may_start());
        assert_eq!(b.state().gauge(), 0);
    }

    #[test]
    fn forced_open_holds_and_half_opens_as_usual() {
        let now = Instant::now();
        let mut b = Breaker::new(T, 4 * T);
        assert_eq!(b.force_open(now), Some(Transition::Opened));
        assert!(!b.may_start());
        assert_eq!(b.force_open(now + T / 2), None, "already open: not extended, not announced again");
        assert_eq!(b.deadline(), Some(now + T));
        assert_eq!(b.tick(now + T), Some(Transition::HalfOpened));
        b.started();
        assert_eq!(b.force_open(now + T), Some(Transition::Opened));
    }

    #[test]
    fn failed_trials_back_off_to_the_cap() {
        let mut now = Instant::now();
        let mut b = Breaker::new(T, 5 * T);
        b.force_open(now);
        let mut waits = Vec::new();
        for _ in 0..6 {
            let until = b.deadline().expect("open");
            waits.push(until - now);
            now = until;
            assert_eq!(b.tick(now), Some(Transition::HalfOpened));
            b.started();
            b.force_open(now);
        }
        assert_eq!(waits, [T, 2 * T, 4 * T, 5 * T, 5 * T, 5 * T]);
        assert_eq!(b.close(), Some(Transition::Closed));
        b.force_open(now);
        assert_eq!(b.deadline(), Some(now + T), "closing starts the backoff again");
        b.try_now(now);
        assert_eq!(b.tick(now), Some(Transition::HalfOpened));
    }

    #[test]
    fn abandoned_trial_can_rerun() {
        let now = Instant::now();
        let mut b = Breaker::new(T, 4 * T);
        b.failed(now, 1);
        b.tick(now + T);
        b.started();
        b.abandoned();
        assert!(b.may_start());
    }
}
