//! The timer table: a turn the loop wakes for anyway does what is nearly due, so that an idle
//! worker wakes only for its heartbeat.

use std::time::{Duration, Instant};

use super::fake::Plan;
use super::Harness;
use crate::sys::sd_notify::Notifier;

const S: fn(u64) -> Duration = Duration::from_secs;

/// WatchdogSec=30 (a ping every 15 s) and HEARTBEAT_INTERVAL=10: each heartbeat's turn pings
/// the watchdog, which then never needs a wake-up of its own.
#[test]
fn the_heartbeat_turn_pings_a_watchdog_due_within_half_its_interval() {
    let mut h = Harness::start(&[], |_| {}, |_, _| Plan::exit(0, ""));
    h.d.notifier = Notifier::silent_with_watchdog(S(30));
    let now = Instant::now();
    // Due in 10 s, more than half of 15 s away: the heartbeat's turn leaves it.
    h.d.timers.heartbeat = now;
    h.d.timers.watchdog = Some(now + S(10));
    h.d.fire_timers(now);
    assert_eq!(h.d.timers.watchdog, Some(now + S(10)));
    // Due in 5 s: pinged now, next due 15 s from now.
    h.d.timers.heartbeat = now;
    h.d.timers.watchdog = Some(now + S(5));
    h.d.fire_timers(now);
    assert_eq!(h.d.timers.watchdog, Some(now + S(15)));
    // Its own deadline still fires it, heartbeat or not.
    h.d.timers.heartbeat = now + S(60);
    h.d.fire_timers(now + S(15));
    assert_eq!(h.d.timers.watchdog, Some(now + S(30)));
}
