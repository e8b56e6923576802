//! Wall-clock helpers. Timers use `Instant`; only what is written to disk uses the wall clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch as a float (the heartbeat's `timestamp`, as the old health checks
/// read it with `float(hb['timestamp'])`).
pub fn epoch_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64()
}

pub fn now_f64() -> f64 {
    epoch_f64(SystemTime::now())
}

/// `2026-11-28T04:34:51.123Z`
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// The wall-clock time `secs` since the epoch; `None` if out of range.
pub fn from_epoch_f64(secs: f64) -> Option<SystemTime> {
    if !secs.is_finite() || !(0.0..=1e11).contains(&secs) {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs))
}
