//! sd_notify(3) through the `sd-notify` crate: readiness, status, stopping, reloading and the
//! watchdog. Outside systemd (no NOTIFY_SOCKET) nothing is sent. A failed notify is returned
//! for the caller to log; it is never fatal.
//!
//! Each STATUS= line goes with the daemon's state (a word): a change of state is sent at once,
//! a change of figures only at most every 250 ms; a line held back is due when the 250 ms are
//! up ([`Notifier::held_until`], a timer of the worker's loop). The worker passes its state's
//! throttle word; a daemon whose line starts with its state (the listener) may pass the line
//! alone.

use std::io;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Status lines with the same state word are sent at most this often.
const STATUS_MIN_GAP: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    last_status: String,
    last_word: String,
    last_sent: Option<Instant>,
    /// A changed line was held back by the throttle and is still to be sent.
    held: bool,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID (checked against this pid).
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        let mut usec = 0;
        let watchdog = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec));
        Notifier {
            enabled,
            watchdog,
            last_status: String::new(),
            last_word: String::new(),
            last_sent: None,
            held: false,
        }
    }

    /// A notifier that sends nothing but has a watchdog of `watchdog` (WatchdogSec), for tests
    /// of the loop's timers.
    #[cfg(test)]
    pub fn silent_with_watchdog(watchdog: Duration) -> Notifier {
        Notifier { watchdog: Some(watchdog), enabled: false, ..Notifier::from_env() }
    }

    /// How often to ping the watchdog: half of WatchdogSec.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    fn send(&self, states: &[NotifyState]) -> io::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        sd_notify::notify(false, states)
    }

    pub fn ready(&mut self, status: &str) -> io::Result<()> {
        self.ready_as(first_word(status), status)
    }

    /// READY=1 with the status `line` of a daemon in `state`.
    pub fn ready_as(&mut self, state: &str, line: &str) -> io::Result<()> {
        self.remember(state, line);
        self.send(&[NotifyState::Ready, NotifyState::Status(line)])
    }

    pub fn reloading(&mut self) -> io::Result<()> {
        let now = sd_notify::NotifyState::monotonic_usec_now()?;
        self.send(&[NotifyState::Reloading, now])
    }

    pub fn stopping(&mut self, status: &str) -> io::Result<()> {
        self.stopping_as(first_word(status), status)
    }

    pub fn stopping_as(&mut self, state: &str, line: &str) -> io::Result<()> {
        self.remember(state, line);
        self.send(&[NotifyState::Stopping, NotifyState::Status(line)])
    }

    /// EXTEND_TIMEOUT_USEC=: asks systemd to wait `by` longer for READY (a daemon that waits
    /// for something outside it before it can be ready).
    pub fn extend_timeout(&mut self, by: Duration) -> io::Result<()> {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)])
    }

    pub fn watchdog(&mut self) -> io::Result<()> {
        self.send(&[NotifyState::Watchdog])
    }

    /// When a line held back by the throttle is due: a loop that sleeps longer wakes for it
    /// then, so a status line is never left stale.
    pub fn held_until(&self) -> Option<Instant> {
        self.last_sent.filter(|_| self.held).map(|t| t + STATUS_MIN_GAP)
    }

    /// [`Notifier::status_as`] for a line that starts with its state.
    pub fn status(&mut self, line: &str, now: Instant) -> io::Result<bool> {
        self.status_as(first_word(line), line, now)
    }

    /// Sends `line` if it changed: at once when the `state` changed, else at most every
    /// 250 ms. Returns whether it was sent.
    pub fn status_as(&mut self, state: &str, line: &str, now: Instant) -> io::Result<bool> {
        if line == self.last_status {
            self.held = false;
            return Ok(false);
        }
        let recent = self.last_sent.is_some_and(|t| now.duration_since(t) < STATUS_MIN_GAP);
        if state == self.last_word && recent {
            self.held = true;
            return Ok(false);
        }
        self.remember(state, line);
        self.held = false;
        self.last_sent = Some(now);
        self.send(&[NotifyState::Status(line)]).map(|()| true)
    }

    fn remember(&mut self, state: &str, line: &str) {
        line.clone_into(&mut self.last_status);
        state.clone_into(&mut self.last_word);
    }
}

/// The state of a line that starts with it.
fn first_word(line: &str) -> &str {
    line.split([',', ' ']).next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silent() -> Notifier {
        Notifier { enabled: false, ..Notifier::from_env() }
    }

    /// A change of figures within the gap is held, and is due when the gap is up: the loop
    /// wakes for it then, so the line is never left stale.
    #[test]
    fn a_line_held_by_the_throttle_is_due_at_the_end_of_the_gap() {
        let mut n = silent();
        let t0 = Instant::now();
        assert_eq!(n.status_as("running", "busy, 1 queued", t0).ok(), Some(true));
        assert_eq!(n.held_until(), None);
        let t1 = t0 + Duration::from_millis(5);
        assert_eq!(n.status_as("running", "idle, 0 queued", t1).ok(), Some(false), "held");
        assert_eq!(n.held_until(), Some(t0 + STATUS_MIN_GAP));
        // Back to what was sent: nothing is held any more.
        assert_eq!(n.status_as("running", "busy, 1 queued", t1).ok(), Some(false));
        assert_eq!(n.held_until(), None);
        assert_eq!(n.status_as("running", "idle, 0 queued", t1).ok(), Some(false));
        let due = n.held_until().expect("held");
        assert_eq!(n.status_as("running", "idle, 0 queued", due).ok(), Some(true), "sent when due");
        assert_eq!(n.held_until(), None);
        // A change of the state word is sent at once.
        assert_eq!(n.status_as("circuit_open", "breaker open", due).ok(), Some(true));
    }
}
