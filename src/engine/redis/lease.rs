//! The reclaim rule, as a pure type: a host reclaims other hosts' entries (RECLAIM) only when
//! its [`ReclaimGate`] is open.
//!
//! Entries become reclaimable when nobody renewed them for one lease. After an engine stall (a
//! slow call: `CLIENT PAUSE`, a fork, a failover) or a reconnect, every owner's renewals were
//! held up as long as this host's calls were, so their entries look idle when they are not.
//! The gate closes for one lease after either, which gives every owner a heartbeat to renew
//! first: a stall of the whole engine causes no storm of reclaims.

use std::time::{Duration, Instant};

/// Whether this host may reclaim now.
#[derive(Clone, Debug)]
pub struct ReclaimGate {
    lease: Duration,
    slow: Duration,
    closed_until: Instant,
}

impl ReclaimGate {
    /// A gate for `lease`; calls taking `slow` or longer count as stalls. Closed for one lease
    /// from `now` (a start is a connect).
    pub fn new(lease: Duration, slow: Duration, now: Instant) -> ReclaimGate {
        ReclaimGate { lease, slow, closed_until: now + lease }
    }

    /// The default threshold of a slow call for `lease`: a third of it, at most one second.
    pub fn default_slow(lease: Duration) -> Duration {
        (lease / 3).min(Duration::from_secs(1))
    }

    fn close_from(&mut self, t: Instant) {
        self.closed_until = self.closed_until.max(t + self.lease);
    }

    /// The connection was made again at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.close_from(now);
    }

    /// An engine call ended at `ended` after `took`.
    pub fn call_took(&mut self, took: Duration, ended: Instant) {
        if took >= self.slow {
            self.close_from(ended);
        }
    }

    pub fn is_open(&self, now: Instant) -> bool {
        now >= self.closed_until
    }

    /// When it opens (now or in the past when open): the loop's next timer for a reclaim.
    pub fn opens_at(&self) -> Instant {
        self.closed_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(30);

    #[test]
    fn closed_for_one_lease_after_start_and_after_each_reconnect() {
        let t0 = Instant::now();
        let mut g = ReclaimGate::new(LEASE, Duration::from_secs(1), t0);
        assert!(!g.is_open(t0 + LEASE - Duration::from_millis(1)));
        assert!(g.is_open(t0 + LEASE));
        let t1 = t0 + Duration::from_secs(100);
        g.connected(t1);
        assert!(!g.is_open(t1 + Duration::from_secs(29)));
        assert_eq!(g.opens_at(), t1 + LEASE);
    }

    #[test]
    fn a_slow_call_closes_it_a_fast_one_does_not() {
        let t0 = Instant::now();
        let mut g = ReclaimGate::new(LEASE, Duration::from_secs(1), t0);
        let t1 = t0 + LEASE;
        g.call_took(Duration::from_millis(999), t1);
        assert!(g.is_open(t1));
        g.call_took(Duration::from_secs(5), t1);
        assert!(!g.is_open(t1 + LEASE - Duration::from_millis(1)));
        assert!(g.is_open(t1 + LEASE));
    }

    #[test]
    fn a_later_event_never_shortens_the_closure() {
        let t0 = Instant::now();
        let mut g = ReclaimGate::new(LEASE, Duration::from_secs(1), t0);
        g.connected(t0 + Duration::from_secs(10));
        g.call_took(Duration::from_secs(2), t0);
        assert_eq!(g.opens_at(), t0 + Duration::from_secs(10) + LEASE);
        assert_eq!(ReclaimGate::default_slow(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(ReclaimGate::default_slow(Duration::from_millis(900)), Duration::from_millis(300));
    }
}
