//! Task files that may still be being written in place (worker-watcher-tasks(5)).
//!
//! A producer may write a task where it lies, whole before it closes it; but a listing of the
//! queue (start-up, a rescan, an inotify overflow, the timer on a network filesystem) can find
//! it half-written. A claimed file that is not JSON is therefore not judged at once while it
//! may still change: while a process has it open for writing (when the kernel can tell, see
//! [`crate::spool::read::writers`]), or, when that cannot be known, until the worker has seen
//! it unchanged for TASK_QUIET_PERIOD. Meanwhile it is put back in the queue, where its writer
//! expects it, and looked at again when its writer closes it (IN_CLOSE_WRITE), when a rescan
//! finds it changed, or at its timer. What is still not JSON after that is dead-lettered.
//!
//! The quiet period is counted from when the worker first saw the file's current version, on
//! the monotonic clock: a modification time from another host's clock (NFS) cannot shorten it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use super::Daemon;
use crate::spool::{Claim, EntryId, Rejected, Unfinished, Writers};

/// A file held back, by its name in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    /// Its modification time when last read: a different one is a new version.
    modified: SystemTime,
    /// When the worker first saw this version.
    since: Instant,
    /// When it is looked at again; `None`: due, or taken back by a change.
    recheck: Option<Instant>,
}

/// The files held back and their timers.
#[derive(Debug, Default)]
pub(super) struct Settling {
    held: HashMap<EntryId, Held>,
    timers: BTreeSet<(Instant, EntryId)>,
}

impl Settling {
    /// Whether a file read unfinished under `name` is held back (and until when), or judged
    /// now. Returns the time its current version was first seen and its next look.
    fn judge(
        &self,
        name: &EntryId,
        u: &Unfinished,
        quiet: Duration,
        now: Instant,
    ) -> Option<(Instant, Instant)> {
        if quiet.is_zero() {
            return None;
        }
        let since = match self.held.get(name) {
            Some(h) if h.modified == u.modified => h.since,
            _ => now,
        };
        match u.writers {
            // However long it stays open; the timer is only a backstop for the close.
            Writers::Open => Some((since, now + quiet)),
            Writers::Closed => None,
            Writers::Unknown => Some((since, since + quiet)).filter(|(_, until)| now < *until),
        }
    }

    fn hold(&mut self, name: EntryId, modified: SystemTime, since: Instant, at: Instant) {
        self.release(&name);
        self.timers.insert((at, name.clone()));
        self.held.insert(name, Held { modified, since, recheck: Some(at) });
    }

    /// Stops the timer of `name`, keeping what was seen of it.
    fn release(&mut self, name: &EntryId) {
        if let Some(h) = self.held.get_mut(name) {
            if let Some(at) = h.recheck.take() {
                self.timers.remove(&(at, name.clone()));
            }
        }
    }

    /// Drops `name`: judged, taken, or gone.
    pub(super) fn forget(&mut self, name: &EntryId) {
        self.release(name);
        self.held.remove(name);
    }

    /// Whether a listing that found `name` with this modification time is to leave it to its
    /// timer (unchanged since it was held back). A changed one is taken now.
    pub(super) fn unchanged(&mut self, name: &EntryId, modified: SystemTime) -> bool {
        match self.held.get(name) {
            Some(h) if h.recheck.is_some() && h.modified == modified => true,
            Some(_) => {
                self.release(name);
                false
            }
            None => false,
        }
    }

    /// `name` arrived (its writer closed it, or it was renamed in): it is looked at now.
    pub(super) fn arrived(&mut self, name: &EntryId) {
        self.release(name);
    }

    /// Files held back (in the queue, waiting for their timer).
    pub(super) fn len(&self) -> usize {
        self.timers.len()
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The names whose time to be looked at again has come.
    pub(super) fn due(&mut self, now: Instant) -> Vec<EntryId> {
        let mut names = Vec::new();
        while let Some((at, name)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.release(&name);
            names.push(name);
        }
        names
    }
}

impl Daemon {
    /// A claimed file that is not a valid task: held back when it may still be being written,
    /// else dead-lettered.
    pub(super) fn unfinished_or_reject(&mut self, claim: Claim, r: Rejected) {
        let now = Instant::now();
        let quiet = self.cfg.tuning.quiet_period;
        let held = r
            .unfinished
            .and_then(|u| self.queue.settling.judge(&claim.source, &u, quiet, now).map(|t| (u, t)));
        let Some((u, (since, at))) = held else {
            self.queue.settling.forget(&claim.source);
            return self.reject(claim, r);
        };
        match self.spool.put_back(&claim) {
            Ok(name) => {
                let writing = if u.writers == Writers::Open { "open" } else { "unknown" };
                self.log.debug(
                    "task file is not whole yet; it stays in the queue and is looked at again",
                    &[
                        ("FILE", &name),
                        ("OPEN_FOR_WRITING", &writing),
                        ("RECHECK_IN_S", &at.saturating_duration_since(now).as_secs_f64()),
                    ],
                );
                if name != claim.source {
                    self.queue.settling.forget(&claim.source);
                }
                self.queue.settling.hold(name, u.modified, since, at);
            }
            Err(e) => {
                self.io_error("cannot put a task file that is not whole yet back in the queue", &e);
                self.queue.settling.forget(&claim.source);
                self.reject(claim, r);
            }
        }
    }

    /// Tasks in the queue not yet claimed, those held back as not whole yet included.
    pub(super) fn queued(&self) -> usize {
        if let Some(n) = self.spool.queued() {
            return n;
        }
        self.queue.order.len() + self.queue.settling.len()
    }

    /// The held-back files whose time has come go back to the end of the queue.
    pub(super) fn recheck_unfinished(&mut self, now: Instant) {
        for name in self.queue.settling.due(now) {
            self.enqueue(name, SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unfinished(modified: SystemTime, writers: Writers) -> Unfinished {
        Unfinished { modified, writers }
    }

    #[test]
    fn held_until_quiet_for_the_period_counted_from_the_first_look() {
        let mut s = Settling::default();
        let quiet = Duration::from_secs(10);
        let t0 = Instant::now();
        let m = SystemTime::UNIX_EPOCH;
        let name = &EntryId::from("a");
        let (since, at) = s.judge(name, &unfinished(m, Writers::Unknown), quiet, t0).expect("held");
        assert_eq!((since, at), (t0, t0 + quiet));
        s.hold(name.clone(), m, since, at);
        assert_eq!(s.len(), 1);
        assert!(s.unchanged(name, m), "a rescan leaves it to its timer");
        assert_eq!(s.next(), Some(at));
        assert!(s.due(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(s.due(at), vec![name.clone()]);
        // Unchanged at the look: quiet long enough, judged.
        assert_eq!(s.judge(name, &unfinished(m, Writers::Unknown), quiet, at), None);
        // Changed: a new period.
        let m2 = m + Duration::from_secs(1);
        assert_eq!(s.judge(name, &unfinished(m2, Writers::Unknown), quiet, at), Some((at, at + quiet)));
    }

    #[test]
    fn open_for_writing_is_held_however_long_and_closed_is_judged() {
        let s = Settling::default();
        let quiet = Duration::from_secs(1);
        let now = Instant::now();
        let m = SystemTime::UNIX_EPOCH;
        let name = &EntryId::from("a");
        assert_eq!(s.judge(name, &unfinished(m, Writers::Open), quiet, now), Some((now, now + quiet)));
        assert_eq!(s.judge(name, &unfinished(m, Writers::Closed), quiet, now), None);
        assert_eq!(s.judge(name, &unfinished(m, Writers::Open), Duration::ZERO, now), None, "0: off");
    }

    #[test]
    fn a_change_or_an_arrival_takes_it_back_from_its_timer() {
        let mut s = Settling::default();
        let now = Instant::now();
        let m = SystemTime::UNIX_EPOCH;
        let name = &EntryId::from("a");
        s.hold(name.clone(), m, now, now + Duration::from_secs(5));
        assert!(!s.unchanged(name, m + Duration::from_secs(1)));
        assert_eq!(s.next(), None);
        assert!(!s.unchanged(name, m), "taken back: not left to a timer any more");
        s.hold(name.clone(), m, now, now + Duration::from_secs(5));
        s.arrived(name);
        assert_eq!(s.next(), None);
        s.forget(name);
        assert!(s.held.is_empty() && s.timers.is_empty());
    }
}
