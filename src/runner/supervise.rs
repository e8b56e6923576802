//! How a child's run is stopped: at its deadline (or when the daemon stops it) SIGTERM goes to
//! its process group, and SIGKILL follows after a grace if it has not exited by then. The
//! worker's agents and the listener's notify commands share this one sequence.
//!
//! [`Stop`] is the sequence's state and nothing else: it decides which signal is due and when;
//! the caller sends it ([`super::Child::signal_group`]) and reaps the child.

use std::time::{Duration, Instant};

/// Why a run was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Its time limit passed.
    Timeout,
    /// The daemon stopped it (a shutdown): not the run's fault.
    Shutdown,
    /// Its claim is gone (another host that took the task over finished it): its outcome is
    /// discarded.
    Gone,
    /// Its task was cancelled (`watcherctl cancel`).
    Cancel,
}

/// A signal to send to the child's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

/// Where a run is in its stop sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Running; stopped for a timeout at `deadline`.
    Running { deadline: Instant },
    /// SIGTERM was sent; SIGKILL follows at `kill_at`.
    Terminating { why: Why, kill_at: Instant },
    /// SIGKILL was sent: only its exit is awaited.
    Killed { why: Why },
}

impl Stop {
    /// A run started now with `timeout`.
    pub fn new(now: Instant, timeout: Duration) -> Stop {
        Stop::Running { deadline: now + timeout }
    }

    /// When [`Stop::tick`] has something to do next; `None` once SIGKILL was sent.
    pub fn next(&self) -> Option<Instant> {
        match *self {
            Stop::Running { deadline } => Some(deadline),
            Stop::Terminating { kill_at, .. } => Some(kill_at),
            Stop::Killed { .. } => None,
        }
    }

    #[cfg(test)]
    /// Whether a signal is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next().is_some_and(|t| now >= t)
    }

    /// The signal due at `now`, if any: SIGTERM at the deadline (a timeout), SIGKILL `grace`
    /// after a SIGTERM.
    pub fn tick(&mut self, now: Instant, grace: Duration) -> Option<Signal> {
        match *self {
            Stop::Running { deadline } if now >= deadline => {
                *self = Stop::Terminating { why: Why::Timeout, kill_at: now + grace };
                Some(Signal::Term)
            }
            Stop::Terminating { why, kill_at } if now >= kill_at => {
                *self = Stop::Killed { why };
                Some(Signal::Kill)
            }
            _ => None,
        }
    }

    /// Stops a running child now for `why`: SIGTERM, then SIGKILL after `grace`. A child
    /// already being stopped keeps its sequence (and its reason).
    pub fn terminate(&mut self, why: Why, now: Instant, grace: Duration) -> Option<Signal> {
        match self {
            Stop::Running { .. } => {
                *self = Stop::Terminating { why, kill_at: now + grace };
                Some(Signal::Term)
            }
            _ => None,
        }
    }

    /// Kills the child now (unless already killed). A child being stopped keeps its reason;
    /// a running one is killed for `why`.
    pub fn kill(&mut self, why: Why) -> Option<Signal> {
        let why = match *self {
            Stop::Killed { .. } => return None,
            Stop::Terminating { why, .. } => why,
            Stop::Running { .. } => why,
        };
        *self = Stop::Killed { why };
        Some(Signal::Kill)
    }

    /// Why the run is being stopped; `None` while it runs.
    pub fn why(&self) -> Option<Why> {
        match *self {
            Stop::Running { .. } => None,
            Stop::Terminating { why, .. } | Stop::Killed { why } => Some(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(5);
    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn a_timeout_terms_then_kills_after_the_grace() {
        let t0 = Instant::now();
        let mut s = Stop::new(t0, LIMIT);
        // (time, signal sent, next time, why)
        let table = [
            (t0, None, Some(t0 + LIMIT), None),
            (t0 + LIMIT, Some(Signal::Term), Some(t0 + LIMIT + GRACE), Some(Why::Timeout)),
            (t0 + LIMIT + GRACE / 2, None, Some(t0 + LIMIT + GRACE), Some(Why::Timeout)),
            (t0 + LIMIT + GRACE, Some(Signal::Kill), None, Some(Why::Timeout)),
            (t0 + 10 * LIMIT, None, None, Some(Why::Timeout)),
        ];
        for (now, signal, next, why) in table {
            assert_eq!(s.tick(now, GRACE), signal, "{now:?}");
            assert_eq!((s.next(), s.why()), (next, why), "{now:?}");
        }
    }

    #[test]
    fn a_shutdown_stops_a_running_child_once_and_keeps_a_timeouts_reason() {
        let t0 = Instant::now();
        let mut s = Stop::new(t0, LIMIT);
        assert_eq!(s.terminate(Why::Shutdown, t0, GRACE), Some(Signal::Term));
        assert_eq!(s.terminate(Why::Shutdown, t0, GRACE), None, "already stopping");
        assert_eq!(s.next(), Some(t0 + GRACE), "SIGKILL follows after the grace");
        assert!(!s.due(t0 + GRACE / 2));
        assert_eq!(s.tick(t0 + GRACE, GRACE), Some(Signal::Kill));
        assert_eq!(s.why(), Some(Why::Shutdown));

        let mut s = Stop::new(t0, LIMIT);
        s.tick(t0 + LIMIT, GRACE);
        assert_eq!(s.terminate(Why::Shutdown, t0 + LIMIT, GRACE), None);
        assert_eq!(s.why(), Some(Why::Timeout), "a timed-out run stays timed out");
        assert_eq!(s.kill(Why::Shutdown), Some(Signal::Kill));
        assert_eq!(s.why(), Some(Why::Timeout), "killed early, still for its timeout");
        assert_eq!(s.kill(Why::Shutdown), None);
        assert_eq!(s.next(), None);
        assert_eq!(Stop::new(t0, LIMIT).kill(Why::Shutdown), Some(Signal::Kill));
    }
}
