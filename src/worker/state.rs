//! The worker's state as others see it: one word for the heartbeat's `status`, the state that
//! systemd's STATUS= line is throttled by, and the line itself. Both come from one
//! [`WorkerState`], so the word, the line and READY/STATUS cannot disagree.
//!
//! The state is derived from the loop (the phase, the breaker, a pause, running agents), never
//! stored beside it: there is nothing to keep in step.

use std::fmt;
use std::time::SystemTime;

use crate::agent::classify::Cause;
use crate::sys::clock;
use crate::worker::breaker;

/// What the worker is doing, as its heartbeat says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    Idle,
    Busy,
    /// The breaker is open: no task starts until it half-opens.
    CircuitOpen,
    /// The breaker lets one trial task run.
    HalfOpen,
    /// A usage or rate limit pauses the worker until its reset.
    RateLimited,
    /// The spend cap pauses the worker until older spend leaves the window.
    BudgetExhausted,
    /// Draining after SIGTERM.
    Stopping,
    /// The last heartbeat, written at exit.
    Stopped,
}

impl WorkerState {
    /// Every state, for the docs test.
    pub const ALL: [WorkerState; 8] = [
        WorkerState::Idle,
        WorkerState::Busy,
        WorkerState::CircuitOpen,
        WorkerState::HalfOpen,
        WorkerState::RateLimited,
        WorkerState::BudgetExhausted,
        WorkerState::Stopping,
        WorkerState::Stopped,
    ];

    /// The heartbeat's `status` word.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::CircuitOpen => "circuit_open",
            WorkerState::HalfOpen => "half_open",
            WorkerState::RateLimited => "rate_limited",
            WorkerState::BudgetExhausted => "budget_exhausted",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
        }
    }

    /// The word systemd's STATUS= line is throttled by ([`crate::sys::sd_notify`]): a change
    /// of it is sent at once, anything else at most every 250 ms. Idle and busy are one word
    /// there: a worker of short tasks flips between them twice a task, and each line sent
    /// wakes systemd (PID 1) right when the agent starts (detection p50 about 0.1 ms higher
    /// in the harness, bench/BENCHMARKS.md, issue 18); the line follows within 250 ms.
    pub const fn status_word(self) -> &'static str {
        match self {
            WorkerState::Idle | WorkerState::Busy => "running",
            other => other.as_str(),
        }
    }

    /// The state of a running worker: stopping first, then an open breaker, a pause, a
    /// half-open breaker, running agents.
    pub(super) fn of(
        stopping: bool,
        breaker: breaker::State,
        paused: Option<WorkerState>,
        active: usize,
    ) -> Self {
        match (stopping, breaker) {
            (true, _) => WorkerState::Stopping,
            (_, breaker::State::Open { .. }) => WorkerState::CircuitOpen,
            _ if paused.is_some() => paused.unwrap_or(WorkerState::Idle),
            (_, breaker::State::HalfOpen) => WorkerState::HalfOpen,
            _ if active > 0 => WorkerState::Busy,
            _ => WorkerState::Idle,
        }
    }

    /// systemd's STATUS= line: the state and the numbers an operator looks at first.
    pub(super) fn status_line(self, f: &Figures) -> String {
        let (active, queued) = (f.active, f.queued);
        let until = |t: Option<SystemTime>| t.map(clock::rfc3339).unwrap_or_default();
        let mut line = match self {
            WorkerState::Stopping => format!("stopping, {active} running"),
            WorkerState::Stopped => "stopped".to_string(),
            WorkerState::CircuitOpen => {
                let why = f.outage.map_or(String::new(), |c| format!(" (agent unavailable: {})", c.as_str()));
                format!(
                    "breaker open{why} until {}, {active} running, {queued} queued",
                    until(f.breaker_until)
                )
            }
            WorkerState::RateLimited => {
                format!("rate limited until {}, {active} running, {queued} queued", until(f.paused_until))
            }
            WorkerState::BudgetExhausted => {
                format!(
                    "spend cap reached until {}, {active} running, {queued} queued",
                    until(f.paused_until)
                )
            }
            WorkerState::HalfOpen => format!("breaker half-open, trying one task, {queued} queued"),
            WorkerState::Busy => format!("{active}/{} running, {queued} queued", f.max_concurrent),
            WorkerState::Idle => format!("idle, {queued} queued, breaker closed"),
        };
        if f.waiting > 0 {
            line.push_str(&format!(", {} waiting to retry", f.waiting));
        }
        if let Some(what) = f.stalled {
            line.push_str(&format!("; stalled, {what}: see the log"));
        }
        line
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The numbers of the status line.
#[derive(Clone, Debug, Default)]
pub(super) struct Figures {
    pub(super) active: usize,
    pub(super) max_concurrent: usize,
    pub(super) queued: usize,
    /// Tasks waiting for their retry time.
    pub(super) waiting: usize,
    /// When an open breaker half-opens.
    pub(super) breaker_until: Option<SystemTime>,
    /// The outage that holds the breaker open, if one does.
    pub(super) outage: Option<Cause>,
    /// When a pause ends.
    pub(super) paused_until: Option<SystemTime>,
    /// What stalls the worker (outcomes that cannot be written, claims that fail).
    pub(super) stalled: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_state_goes_by_precedence() {
        let open = breaker::State::Open { until: Instant::now() };
        let (closed, half) = (breaker::State::Closed, breaker::State::HalfOpen);
        let rate = Some(WorkerState::RateLimited);
        let table = [
            (true, open, rate, 3, WorkerState::Stopping),
            (false, open, rate, 3, WorkerState::CircuitOpen),
            (false, half, rate, 0, WorkerState::RateLimited),
            (false, closed, Some(WorkerState::BudgetExhausted), 2, WorkerState::BudgetExhausted),
            (false, half, None, 1, WorkerState::HalfOpen),
            (false, closed, None, 1, WorkerState::Busy),
            (false, closed, None, 0, WorkerState::Idle),
        ];
        for (stopping, b, paused, active, want) in table {
            assert_eq!(
                WorkerState::of(stopping, b, paused, active),
                want,
                "{stopping} {b:?} {paused:?} {active}"
            );
        }
    }

    #[test]
    fn the_line_tells_the_state_and_the_figures() {
        let f = Figures { active: 2, max_concurrent: 3, queued: 5, ..Figures::default() };
        assert_eq!(WorkerState::Busy.status_line(&f), "2/3 running, 5 queued");
        assert_eq!(WorkerState::Idle.status_line(&Figures::default()), "idle, 0 queued, breaker closed");
        let f = Figures { waiting: 1, stalled: Some("tasks cannot be claimed"), ..f };
        assert_eq!(
            WorkerState::Stopping.status_line(&f),
            "stopping, 2 running, 1 waiting to retry; stalled, tasks cannot be claimed: see the log"
        );
        let f = Figures { outage: Some(Cause::Network), ..Figures::default() };
        assert!(WorkerState::CircuitOpen
            .status_line(&f)
            .starts_with("breaker open (agent unavailable: network) until "));
        let words: Vec<&str> = WorkerState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            [
                "idle",
                "busy",
                "circuit_open",
                "half_open",
                "rate_limited",
                "budget_exhausted",
                "stopping",
                "stopped"
            ]
        );
    }
}
