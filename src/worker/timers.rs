//! The loop's timers, in one table: each says when it is next due and what it does then. The
//! poll timeout is the earliest of them, and a turn fires those that are due, in the table's
//! order; nothing is listed twice.
//!
//! Most timers are read from what they time (an agent's stop sequence, the agents'
//! containment, the breaker, a pause, files held back, HTTP connections, the drain); [`Timers`] keeps the few that are only times.

use std::time::{Duration, Instant};

use super::{rescan_every, Daemon, Phase, RETRY_IO};

/// The timers that are only times.
pub(super) struct Timers {
    /// The next heartbeat (staged early on a change of state).
    pub(super) heartbeat: Instant,
    /// The next WATCHDOG=1, when systemd asked for one.
    pub(super) watchdog: Option<Instant>,
    /// The next safety rescan of the queue (or a retry of a failed listing).
    pub(super) rescan: Option<Instant>,
    /// A retry of failed writes: the turn's flush tries them again.
    pub(super) commit: Option<Instant>,
}

impl Timers {
    pub(super) fn new(heartbeat: Instant, rescan: Option<Instant>) -> Timers {
        Timers { heartbeat, watchdog: None, rescan, commit: None }
    }
}

/// One timer: when it is due next (`None`: not set), and what it does when due.
struct Timer {
    next: fn(&Daemon) -> Option<Instant>,
    fire: fn(&mut Daemon, Instant),
    /// An agent's exit is collected before this timer is judged (see [`Daemon::turn`]).
    reap_first: bool,
    /// From when it may fire early, on a turn the loop is awake for anyway, so that it seldom
    /// needs a wake-up of its own.
    early: Option<fn(&Daemon) -> Option<Instant>>,
}

const fn timer(next: fn(&Daemon) -> Option<Instant>, fire: fn(&mut Daemon, Instant)) -> Timer {
    Timer { next, fire, reap_first: false, early: None }
}

/// Every timer, in the order a turn fires them.
const TIMERS: [Timer; 15] = [
    // SIGTERM at a task's time limit, SIGKILL after KILL_GRACE.
    Timer { next: Daemon::agents_next, fire: Daemon::enforce_deadlines, reap_first: true, early: None },
    // Killed run cgroups removed once empty.
    timer(|d| d.agents.next_deadline(), Daemon::tick_containment),
    timer(Daemon::http_deadline, Daemon::expire_http),
    timer(|d| d.holds.breaker.deadline(), Daemon::half_open),
    timer(|d| d.holds.paused.map(|p| p.until), Daemon::end_pause),
    timer(|d| Some(d.timers.heartbeat), |d, _| d.stage_heartbeat()),
    timer(|d| d.timers.rescan, Daemon::timed_rescan),
    timer(|d| d.queue.settling.next(), Daemon::recheck_unfinished),
    timer(|d| d.timers.commit, |d, _| d.timers.commit = None),
    // A STATUS= line held back by its throttle: the turn's flush sends it.
    timer(|d| d.notifier.held_until(), |_, _| {}),
    timer(|d| d.health.claims_paused_until, |d, _| d.health.claims_paused_until = None),
    // The end of the shutdown's grace: what still runs is stopped.
    Timer { next: Daemon::drain_deadline, fire: Daemon::abandon_running, reap_first: true, early: None },
    // A retry's time: the turn's scheduling starts it.
    timer(Daemon::retry_due, |_, _| {}),
    // The spool's own (an engine's reclaims and promotions): its intake acts on them.
    timer(|d| d.spool.next_deadline(), |d, _| d.on_intake()),
    // Pinged on any turn within half its interval of the deadline: an idle worker's
    // heartbeat turn pings it too (HEARTBEAT_INTERVAL=10 and WatchdogSec=30: every 10 s, and
    // no wake-up of its own).
    Timer {
        next: |d| d.timers.watchdog,
        fire: Daemon::ping_watchdog,
        reap_first: false,
        early: Some(Daemon::watchdog_early),
    },
];

impl Daemon {
    /// The earliest time something must happen; `None`: only an event can wake us.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        if self.more_work {
            return Some(Instant::now());
        }
        TIMERS.iter().filter_map(|t| (t.next)(self)).min()
    }

    /// Whether a timer that an agent's exit must come before is due: a running agent's
    /// deadline (or its SIGKILL after the grace), or the end of the shutdown's grace.
    pub(super) fn deadline_due(&self, now: Instant) -> bool {
        TIMERS.iter().filter(|t| t.reap_first).any(|t| (t.next)(self).is_some_and(|at| now >= at))
    }

    /// Fires every timer due at `now`, or early enough, in order; each is judged after the
    /// ones before fired.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        for t in &TIMERS {
            let early = t.early.and_then(|e| e(self));
            if (t.next)(self).is_some_and(|at| now >= at) || early.is_some_and(|at| now >= at) {
                (t.fire)(self, now);
            }
        }
    }

    /// From when the watchdog may be pinged early: half its ping interval before it is due.
    fn watchdog_early(&self) -> Option<Instant> {
        let every = self.notifier.watchdog_interval()?;
        self.timers.watchdog?.checked_sub(every / 2)
    }

    fn agents_next(&self) -> Option<Instant> {
        self.flight.slots.iter().flatten().filter_map(|r| r.stop.next()).min()
    }

    fn drain_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Draining { deadline, abandoned: false } => Some(deadline),
            _ => None,
        }
    }

    /// The first retry's time, while a task may start.
    fn retry_due(&self) -> Option<Instant> {
        self.can_start().then(|| self.flight.waiting.keys().next().map(|k| k.0)).flatten()
    }

    fn half_open(&mut self, now: Instant) {
        if let Some(t) = self.holds.breaker.tick(now) {
            self.breaker_changed(t);
        }
    }

    fn timed_rescan(&mut self, now: Instant) {
        self.timers.rescan = None;
        if let Err(e) = self.rescan() {
            self.io_error("cannot list the queue", &e);
            self.timers.rescan = Some(now + RETRY_IO);
        }
    }

    fn ping_watchdog(&mut self, now: Instant) {
        let Some(every) = self.notifier.watchdog_interval() else { return };
        let r = self.notifier.watchdog();
        self.report_notify(r);
        self.timers.watchdog = Some(now + every);
    }

    /// The safety rescan interval in force: RESCAN_INTERVAL, or when it is unset,
    /// AUTO_RESCAN on a network filesystem.
    pub(super) fn rescan_every(&self) -> Option<Duration> {
        rescan_every(&self.cfg, self.remote)
    }

    /// Says at start-up why the queue is rescanned on a timer, or why it should be.
    pub(super) fn announce_rescan(&mut self) {
        let Some(fs) = self.remote else { return };
        match self.rescan_every() {
            Some(every) => self.log.info(
                "the queue is on a filesystem where inotify misses writes made elsewhere; rescanning it on a timer",
                &[("FILESYSTEM", &fs), ("RESCAN_INTERVAL_S", &every.as_secs_f64())],
            ),
            None => self.log.warn(
                "the queue is on a filesystem where inotify misses writes made elsewhere, and RESCAN_INTERVAL=0: such tasks wait for the next local change",
                &[("FILESYSTEM", &fs)],
            ),
        }
    }
}
