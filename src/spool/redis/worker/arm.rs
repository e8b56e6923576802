//! The claim armed with the wake-up thread (wakeup.rs): while the loop has free slots and
//! knows of no waiting entry, it leaves a claim for them there, so that the next arrival is
//! claimed by the thread that sees it, in one round trip, without a turn of the loop and a
//! hop to the I/O thread first. The slots stay reserved (counted as requested) until the
//! claim is made or taken back; they are taken back as soon as they are no longer free (a
//! task started, the breaker opened, a pause, a reconnect, the shutdown), and before each
//! batch is planned, so that claims and reclaims of the loop's own batches see every slot.

use std::time::{Duration, Instant};

use super::RedisSpool;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::reply::Reply;

impl RedisSpool {
    /// Takes in the claims the wake-up thread made.
    pub(super) fn armed_made(&mut self) {
        let made = match self.arm.lock() {
            Ok(mut a) => std::mem::take(&mut a.made),
            Err(_) => return,
        };
        for (slots, reply, took) in made {
            let now = Instant::now();
            self.claims.armed = self.claims.armed.saturating_sub(slots);
            self.claims.gate.call_took(took, now);
            self.claims.depth_due = true;
            if reply.is_err() {
                // Its reply was lost or it failed: what it may have taken is in the own
                // pending list, read before anything new is claimed.
                self.claims.recover = true;
                self.claims.more = true;
            }
            self.claim_outcome(slots, reply, now, true);
        }
    }

    /// Takes back the armed slots, unless the thread took them already (their claim's
    /// outcome is on its way then, and they stay requested until it is in).
    pub(super) fn disarm(&mut self) {
        self.set_arm(0);
    }

    /// Arms a claim for the slots free now, when the loop would not claim them otherwise
    /// (it knows of no waiting entry) and claims may be made; or takes the slots back.
    pub(super) fn rearm(&mut self, now: Instant) {
        let c = &self.claims;
        let paused = c.paused_until.is_some_and(|t| now < t);
        let ready = c.started && !c.recover && !c.more && !paused && self.link.get_mut().is_up();
        let handed = self.out.claimed.len() + self.out.reclaimed.len();
        let others = c.requested.saturating_sub(c.armed);
        let slots = if ready { c.free.saturating_sub(others + handed) } else { 0 };
        self.set_arm(slots);
    }

    fn set_arm(&mut self, slots: usize) {
        let c = &mut self.claims;
        if slots == c.armed {
            return;
        }
        let Ok(mut a) = self.arm.lock() else { return };
        if a.slots != c.armed {
            // Taken by the thread: the claim is being made for them.
            return;
        }
        a.slots = slots;
        c.requested = c.requested.saturating_sub(c.armed) + slots;
        c.armed = slots;
    }

    /// The outcome of a claim for `n` slots (made by the loop's batch, or `armed`).
    pub(super) fn claim_outcome(
        &mut self,
        n: usize,
        reply: Result<Reply, EngineError>,
        now: Instant,
        armed: bool,
    ) {
        self.claims.requested = self.claims.requested.saturating_sub(n);
        match reply {
            Ok(Reply::Claimed { delivered, .. }) => {
                // A full claim may have left entries waiting; the armed one was made while
                // none was known to wait.
                if delivered.len() < n {
                    self.claims.more = false;
                } else if armed {
                    self.claims.more = true;
                }
                self.delivered(delivered, false);
            }
            Ok(Reply::Paused { ms, .. }) => self.paused(ms, now),
            Ok(Reply::Stalled { ms }) => {
                let wait = u64::try_from(ms).map_or(super::PAUSE_RECHECK, Duration::from_millis);
                self.claims.reclaim_at = now + wait + Duration::from_millis(1);
            }
            _ => {}
        }
    }
}
