//! The loop's side of a spool over the network (an engine shared by hosts: `SPOOL=redis://…`,
//! [`crate::spool::redis::worker::RedisSpool`]): waiting for it at start-up, the claims it
//! makes by itself, the tasks it takes over from hosts that died, the claims it lost, and its
//! own log lines. The folders need none of this: their spool is always ready, claims are the
//! loop's, and nothing is taken from under them.

use std::time::{Duration, Instant};

use mio::Events;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::policy::{self, Reclaimed};
use super::{Daemon, Phase, SIGNALS, SPOOL, WRITES};
use crate::error::Fatal;
use crate::log::ids;
use crate::runner::supervise::Why;
use crate::spool::listener::{Loudness, Note};
use crate::spool::{Claim, EntryId, Readiness};

/// How much longer systemd is asked to wait for READY each time, while the spool is awaited.
const EXTEND_START: Duration = Duration::from_secs(30);

impl Daemon {
    /// Before recovery: waits until the spool can be used, the loop's duties going on (signals,
    /// the watchdog, STATUS=, systemd's start time-out extended); READY waits too. Returns
    /// `false` when a stop signal came first. An engine refused as unsafe is a configuration
    /// error (exit status 78).
    pub(super) fn await_spool(&mut self) -> Result<bool, Fatal> {
        if self.spool.readiness() == Readiness::Ready {
            return Ok(true);
        }
        // Its events (connected, refused) wake this wait.
        self.spool
            .register(self.poll.registry(), SPOOL, WRITES)
            .map_err(|e| Fatal::Other(format!("cannot watch the spool: {e}")))?;
        let mut said: Option<String> = None;
        let mut events = Events::with_capacity(16);
        let mut extend_at = Instant::now();
        let mut watchdog_at: Option<Instant> = None;
        loop {
            let dones = self.spool.commit();
            drop(dones);
            self.log_spool_notes();
            match self.spool.readiness() {
                Readiness::Ready => return Ok(true),
                Readiness::Refused(line) => return Err(Fatal::Config(line)),
                Readiness::Waiting(why) if said.as_ref() != Some(&why) => {
                    self.log.warn("waiting for the spool before starting", &[("ERROR", &why)]);
                    let line = format!("waiting for the spool: {why}");
                    let r = self.notifier.status_as("waiting", &line, Instant::now()).map(|_| ());
                    self.report_notify(r);
                    said = Some(why);
                }
                Readiness::Waiting(_) => {}
                Readiness::Connecting(to) => {
                    let line = format!("waiting for the spool: connecting to {to}");
                    let r = self.notifier.status_as("waiting", &line, Instant::now()).map(|_| ());
                    self.report_notify(r);
                }
            }
            let now = Instant::now();
            if now >= extend_at {
                let r = self.notifier.extend_timeout(EXTEND_START);
                self.report_notify(r);
                extend_at = now + EXTEND_START / 3;
            }
            // The watchdog is fed while the spool is awaited: the daemon is alive, only waiting.
            let mut next = extend_at;
            if let Some(every) = self.notifier.watchdog_interval() {
                if watchdog_at.is_none_or(|t| now >= t) {
                    let r = self.notifier.watchdog();
                    self.report_notify(r);
                    watchdog_at = Some(now + every);
                }
                next = next.min(watchdog_at.unwrap_or(next));
            }
            let wait = next.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(Fatal::Other(format!("event loop failed: {e}")));
                }
            }
            if events.iter().any(|e| e.token() == SIGNALS) && self.stop_asked() {
                return Ok(false);
            }
        }
    }

    /// Signals while the spool is awaited: a stop ends the wait; a reload waits for the loop.
    fn stop_asked(&mut self) -> bool {
        let pending: Vec<i32> = self.sources.signals.pending().collect();
        let mut stop = false;
        for signal in pending {
            match signal {
                SIGTERM | SIGINT => stop = true,
                SIGHUP => self.log.info(
                    "reload ignored: the spool is not ready yet; the env file is read at start-up",
                    &[],
                ),
                _ => {}
            }
        }
        stop
    }

    /// What the spool claimed by itself: lost claims stopped, tasks taken over from dead
    /// hosts judged against MAX_RECLAIMS, new claims started.
    pub(super) fn spool_claims(&mut self, claimed: Vec<Claim>, reclaimed: Vec<Claim>, gone: Vec<EntryId>) {
        for key in gone {
            self.claim_gone(&key);
        }
        let all = reclaimed.into_iter().map(|c| (c, true)).chain(claimed.into_iter().map(|c| (c, false)));
        for (claim, taken_over) in all {
            if !self.can_start() {
                // Told of a free slot that is taken or held since (a reload, the breaker).
                if let Err(e) = self.spool.requeue(&claim) {
                    self.io_error("cannot re-queue a task claimed when no slot was free", &e);
                }
            } else if taken_over {
                self.take_over(claim);
            } else {
                self.claimed(claim);
            }
        }
    }

    /// A claim the spool made: a task taken over past MAX_RECLAIMS (or MAX_TASK_RUNS) ends
    /// here; any other starts.
    fn take_over(&mut self, claim: Claim) {
        let Ok(loaded) = self.spool.load(&claim, self.cfg.tuning.max_task_bytes, &self.cfg.worker) else {
            // Not a valid task: the claim's own path dead-letters it.
            return self.claimed(claim);
        };
        let task = &loaded.task;
        let limits = policy::Limits::of(&self.cfg.tuning, task.max_retries);
        if self.flight.ids.contains(&task.id) {
            return self.claimed(claim);
        }
        match policy::after_reclaim(&task.state, &limits) {
            Reclaimed::GiveUp { reason, message } => {
                self.flight.ids.insert(task.id.clone());
                let result = self.reclaim_result(task, reason, &message);
                let fields = vec![
                    ("TASK_ID", task.id.clone()),
                    ("REASON", reason.as_str().into()),
                    ("ERROR", message.clone()),
                ];
                self.dead_letter(claim, loaded.task, reason, message, Some(result), fields, None);
            }
            Reclaimed::Requeue => {
                self.log.warn(
                    "task left in flight by a host that died; taken over",
                    &[
                        ("MESSAGE_ID", &ids::TASK_RECLAIMED),
                        ("TASK_ID", &task.id),
                        ("RECLAIMS", &task.state.reclaims),
                    ],
                );
                // Its agent ran on that host: the session it may have made is resumed here.
                let mut loaded = loaded;
                self.session_reclaimed(&mut loaded.task, loaded.queued_at);
                self.claimed_loaded(claim, loaded);
            }
        }
    }

    /// A claim is no longer this worker's (another host finished the task): its agent is
    /// stopped, and its outcome will be discarded.
    fn claim_gone(&mut self, key: &EntryId) {
        let now = Instant::now();
        let grace = self.cfg.tuning.kill_grace;
        for (slot, run) in self.flight.slots.iter_mut().enumerate() {
            let Some(run) = run.as_mut().filter(|r| r.claim.key == *key) else { continue };
            self.log.warn(
                "the task was finished by another host that took it over: its run here is stopped and discarded",
                &[("TASK_ID", &run.task.id), ("ATTEMPT", &run.attempt)],
            );
            if let Some(signal) = run.stop.terminate(Why::Gone, now, grace) {
                self.agents.signal(slot, signal);
            }
        }
    }

    /// A run stopped because its claim is gone: nothing of it is kept.
    pub(super) fn discard_gone(&mut self, claim: &Claim, task_id: &str) {
        self.holds.breaker.abandoned();
        self.flight.ids.remove(task_id);
        if let Err(e) = self.spool.discard(claim) {
            self.io_error("cannot let go of a task finished elsewhere", &e);
        }
    }

    /// Logs what the spool said.
    pub(super) fn log_spool_notes(&mut self) {
        for Note { loudness, message, fields } in self.spool.notes() {
            let refs: Vec<crate::log::Field> =
                fields.iter().map(|(k, v)| (*k, v as &dyn std::fmt::Display)).collect();
            match loudness {
                Loudness::Info => self.log.info(message, &refs),
                Loudness::Warn => self.log.warn(message, &refs),
                Loudness::Retried | Loudness::Error => self.log.error(message, &refs),
            }
        }
    }

    /// Whether the spool is not usable now (an engine that cannot be reached).
    pub(super) fn spool_waiting(&self) -> bool {
        self.phase == Phase::Running && self.spool.readiness() != Readiness::Ready
    }
}
