//! How old a worker's heartbeat is, measured on the listener's monotonic clock, so that a step
//! of the wall clock (an NTP correction, a VM restored from a snapshot) never makes a live
//! worker look stale, nor a dead one look fresh.
//!
//! A heartbeat's `timestamp` is the worker's wall clock when it wrote the file. The listener
//! trusts it only when it knows nothing better:
//! - a heartbeat that inotify has just reported written, and that differs from the last one
//!   seen, is fresh now (age 0), whatever its timestamp says;
//! - one read without such a report (at start-up, after an inotify overflow, when a worker is
//!   found) is as old as its timestamp says (never less than 0), but, if an earlier one was
//!   seen, never older than the time since that one was seen;
//! - one that has not changed keeps aging from when it was seen.
//!
//! From then on its age grows with the monotonic clock.

use std::time::Instant;

/// When a heartbeat was seen, and how old it was then.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Freshness {
    seen: Instant,
    /// Its age when seen, in seconds.
    age_then: f64,
    /// Its `timestamp`, to tell a new heartbeat from the same one read again.
    timestamp: f64,
}

impl Freshness {
    /// The freshness after reading a heartbeat of `timestamp` at `now` (`wall`: the wall clock
    /// then). `written`: inotify reported the file written just before this read.
    pub fn read(
        prev: Option<Freshness>,
        timestamp: f64,
        written: bool,
        now: Instant,
        wall: f64,
    ) -> Freshness {
        match prev {
            Some(p) if p.timestamp.to_bits() == timestamp.to_bits() => p,
            _ if written => Freshness { seen: now, age_then: 0.0, timestamp },
            prev => {
                let own = (wall - timestamp).max(0.0);
                let bound =
                    prev.map_or(f64::INFINITY, |p| now.saturating_duration_since(p.seen).as_secs_f64());
                Freshness { seen: now, age_then: own.min(bound), timestamp }
            }
        }
    }

    /// Its age at `now`, in seconds.
    pub fn age(&self, now: Instant) -> f64 {
        self.age_then + now.saturating_duration_since(self.seen).as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const WALL: f64 = 1_800_000_000.0;

    #[test]
    fn a_heartbeat_written_now_is_fresh_whatever_its_timestamp() {
        let t0 = Instant::now();
        for ts in [WALL - 86_400.0, WALL + 86_400.0, WALL] {
            let f = Freshness::read(None, ts, true, t0, WALL);
            assert_eq!(f.age(t0), 0.0, "{ts}");
            assert_eq!(f.age(t0 + Duration::from_secs(2)), 2.0);
        }
    }

    #[test]
    fn one_read_at_start_up_is_as_old_as_it_says_but_not_younger_than_zero() {
        let t0 = Instant::now();
        assert_eq!(Freshness::read(None, WALL - 30.0, false, t0, WALL).age(t0), 30.0);
        assert_eq!(Freshness::read(None, WALL + 30.0, false, t0, WALL).age(t0), 0.0);
    }

    #[test]
    fn a_step_of_the_wall_clock_does_not_age_a_heartbeat_read_again() {
        let t0 = Instant::now();
        let f = Freshness::read(None, WALL, true, t0, WALL);
        let t1 = t0 + Duration::from_secs(5);
        // The same file, read again after the clock stepped an hour forward: it keeps aging
        // from when it was seen.
        assert_eq!(Freshness::read(Some(f), WALL, false, t1, WALL + 3605.0).age(t1), 5.0);
        // A new one found by a rescan after the step: no older than the time since the last.
        let g = Freshness::read(Some(f), WALL + 4.0, false, t1, WALL + 3605.0);
        assert_eq!(g.age(t1), 5.0);
    }
}
