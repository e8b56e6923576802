//! The range of every setting that is a time: a lower bound, so that no interval can make a
//! daemon spin (HEARTBEAT_INTERVAL=1e-300 once took 132 % CPU, RESCAN_INTERVAL=1e-9 100 %),
//! and an upper one, so that no deadline overflows the clock or waits past any use.
//!
//! One table for the loader and the tests; the `expects` text of each variable in
//! [`super::vars`] states the same numbers (a test holds them to each other).

use std::time::Duration;

/// The values a time setting may take, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub min: f64,
    pub max: f64,
    /// `0` is accepted too, and means "off".
    pub off: bool,
}

const fn span(min: f64, max: f64) -> Span {
    Span { min, max, off: false }
}

const fn or_off(min: f64, max: f64) -> Span {
    Span { min, max, off: true }
}

const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;
const YEAR: f64 = 365.0 * DAY;

/// Every time setting of the daemons and watcherctl, with its range.
pub const SPANS: &[(&str, Span)] = &[
    ("TASK_TIMEOUT", span(0.1, YEAR)),
    ("KILL_GRACE", span(0.0, HOUR)),
    ("SHUTDOWN_GRACE", span(0.0, DAY)),
    ("HEARTBEAT_INTERVAL", span(0.1, HOUR)),
    ("INITIAL_RETRY_DELAY", span(0.0, DAY)),
    ("MAX_RETRY_DELAY", span(0.0, WEEK)),
    ("CIRCUIT_BREAKER_TIMEOUT", span(0.1, DAY)),
    ("CIRCUIT_BREAKER_MAX_TIMEOUT", span(0.1, DAY)),
    // A safety net under inotify: more often than once a second buys nothing.
    ("RESCAN_INTERVAL", or_off(1.0, DAY)),
    ("RATE_LIMIT_PAUSE", span(1.0, DAY)),
    ("TASK_QUIET_PERIOD", span(0.0, HOUR)),
    ("MAX_TASK_WALL_TIME", or_off(1.0, YEAR)),
    ("WORKER_BUDGET_WINDOW", span(1.0, YEAR)),
    ("LEASE", span(0.5, DAY)),
    ("RESULT_TTL", span(1.0, YEAR)),
    ("SPOOL_TIMEOUT", span(0.1, 60.0)),
    ("HEARTBEAT_STALE_AFTER", span(1.0, WEEK)),
    ("ORCHESTRATOR_NOTIFY_TIMEOUT", span(0.1, DAY)),
    ("LISTENER_BACKFILL", span(0.0, 10.0 * YEAR)),
];

/// The range of the time setting `name`.
pub fn of(name: &str) -> Option<Span> {
    SPANS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

impl Span {
    /// Parses seconds (a decimal number) within the range.
    pub fn parse(&self, s: &str) -> Result<Duration, ()> {
        let x: f64 = s.trim().parse().map_err(|_| ())?;
        let ok = x.is_finite() && ((self.min..=self.max).contains(&x) || (self.off && x == 0.0));
        if ok {
            Ok(Duration::from_secs_f64(x))
        } else {
            Err(())
        }
    }

    /// What the variable's `expects` text says of the range.
    #[cfg(test)]
    pub fn describe(&self) -> String {
        let range = format!("a number of seconds from {} to {}", self.min, self.max);
        if self.off {
            format!("0 (off) or {range}")
        } else {
            range
        }
    }
}
