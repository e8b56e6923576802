//! Results in folders: which are new (listings against the cursor, and inotify's arrivals),
//! taking them a few from each worker in turn, and seals of quiet result folders (see
//! [`super::cursor`]).

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cursor::{self, Key, QUIET};
use super::{note, taken, FsListener};
use crate::format::summary::{self, ResultReading};
use crate::spool::layout;
use crate::spool::listener::{Delivered, Loudness};

/// Time spent listing result folders in one turn, at most (a folder is never cut short).
pub(super) const SCAN_BUDGET: Duration = Duration::from_millis(50);
/// Results of one worker taken before the next worker's turn.
const PER_WORKER: usize = 32;

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Opens a regular file without following a symlink and without blocking on a FIFO;
/// returns it with its size.
fn open(path: &Path) -> Result<(File, u64), crate::spool::read::Error> {
    let (file, meta) = crate::spool::read::open(path)?;
    Ok((file, meta.len()))
}

/// Reads the result file `path` named `name`; `None`: it is gone (removed or moved away
/// before it could be read: `watcherctl dlq retry`).
pub(super) fn read(path: &Path, name: &str) -> Option<ResultReading> {
    let stem = layout::stem_of(name);
    match open(path) {
        Ok((file, len)) => Some(summary::read(file, len, stem)),
        Err(e) if e.is_missing() => None,
        Err(e) => Some(ResultReading::Unreadable(e.to_string())),
    }
}

impl FsListener {
    /// Before READY: the folders whose seal holds need no listing (one `stat` each); the
    /// others stay queued, to be listed a few each turn.
    pub(super) fn skip_sealed(&mut self) {
        for name in std::mem::take(&mut self.to_scan) {
            let now = fs::metadata(self.layout.results(&name)).map(|m| cursor::mtime_ns(&m)).ok();
            match self.followed.get_mut(&name) {
                Some(f) if f.cursor.sealed_ns.is_some() && f.cursor.sealed_ns == now => f.scan_due = false,
                _ => self.to_scan.push_back(name),
            }
        }
    }

    /// Lists queued folders until `budget` is spent (at least one), so that a start-up with
    /// many changed folders never holds the loop for long.
    pub(super) fn scan_some(&mut self, budget: Duration, backfill: Duration) {
        let start = Instant::now();
        while let Some(name) = self.to_scan.pop_front() {
            if let Some(f) = self.followed.get_mut(&name) {
                f.scan_due = false;
                self.scan(&name, backfill);
            }
            if start.elapsed() >= budget {
                break;
            }
        }
    }

    /// Finds the results of `worker` its cursor has not taken, and queues them.
    fn scan(&mut self, worker: &str, backfill: Duration) {
        let dir = self.layout.results(worker);
        let Some(f) = self.followed.get_mut(worker) else { return };
        let found = match cursor::scan(&dir, &f.cursor) {
            Ok(s) => s,
            Err(e) => {
                let fields: [(&str, &dyn std::fmt::Display); 2] = [("WORKER", &worker), ("ERROR", &e)];
                self.notes.push(note(
                    Loudness::Retried,
                    "cannot list a result folder; trying again",
                    &fields,
                ));
                self.retry_later();
                return;
            }
        };
        if found.unchanged {
            return;
        }
        let mut present = found.present;
        f.taken.keep_only(&mut present);
        let backfill = backfill.as_nanos().min(i64::MAX as u128) as i64;
        f.cursor.known(now_ns().saturating_sub(backfill));
        f.pending.extend(found.new);
        if f.watched {
            f.seal_at = Some(Instant::now() + QUIET);
        }
        self.dirty = true;
    }

    pub(super) fn result_arrived(&mut self, worker: &str, name: Option<&str>) {
        self.touched(worker);
        let Some(name) = name.filter(|n| layout::record_stem(n).is_some()) else { return };
        let path = self.layout.results(worker).join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else { return };
        let key = (cursor::mtime_ns(&meta), name.to_string());
        if let Some(f) = self.followed.get_mut(worker).filter(|f| f.cursor.is_new(&key)) {
            f.pending.insert(key);
        }
    }

    /// A result was removed or moved away (by `watcherctl dlq retry`, a clean-up): it is
    /// forgotten, and a new result of its task is a new result.
    pub(super) fn result_removed(&mut self, worker: &str, name: Option<&str>) {
        self.touched(worker);
        let name = name.filter(|n| layout::record_stem(n).is_some());
        if let (Some(f), Some(name)) = (self.followed.get_mut(worker), name) {
            f.taken.forget(name);
        }
    }

    /// Something changed in `worker`'s result folder: it is not sealed until quiet again.
    pub(super) fn touched(&mut self, worker: &str) {
        if let Some(f) = self.followed.get_mut(worker) {
            f.seal_at = Some(Instant::now() + QUIET);
        }
    }

    /// Takes up to `max` pending results, round robin over the workers.
    pub(super) fn take(&mut self, max: usize) -> Vec<Delivered> {
        let mut out = Vec::new();
        let mut budget = max;
        while budget > 0 {
            let names: Vec<String> =
                self.followed.iter().filter(|(_, f)| !f.pending.is_empty()).map(|(n, _)| n.clone()).collect();
            if names.is_empty() {
                break;
            }
            for name in names {
                for _ in 0..PER_WORKER.min(budget) {
                    let Some(key) = self.followed.get_mut(&name).and_then(|f| f.pending.pop_first()) else {
                        break;
                    };
                    out.extend(self.take_one(&name, key));
                    budget -= 1;
                }
            }
        }
        out
    }

    /// Reads one result, records it as taken, and moves the cursor past it.
    fn take_one(&mut self, worker: &str, key: Key) -> Option<Delivered> {
        let path = self.layout.results(worker).join(&key.1);
        let reading = read(&path, &key.1);
        let f = self.followed.get_mut(worker)?;
        let delivered = reading.map(|reading| {
            let generation = match &reading {
                ResultReading::Result(s) => taken::generation(s.finished_at.as_deref().unwrap_or("")),
                ResultReading::Unreadable(_) => taken::generation(taken::UNREADABLE),
            };
            // Taken before: its file was touched, edited or copied over since.
            let again = f.taken.has(&key.1, generation);
            if !again {
                f.taken.take(&key.1, generation);
            }
            let announce = f.cursor.announces(&key);
            let at = path.display().to_string();
            Delivered { worker: worker.to_string(), written_ns: key.0, at, reading, announce, again }
        });
        let lowest = f.pending.first().map(|k| k.0);
        f.cursor.take(key, lowest);
        if lowest.is_none() {
            f.cursor.quiet_before_ns = None;
        }
        self.dirty = true;
        delivered
    }

    /// Seals the result folders that have been quiet: see [`super::cursor`].
    pub(super) fn seal_quiet(&mut self, now: Instant) {
        let due: Vec<String> = self
            .followed
            .iter()
            .filter(|(_, f)| f.watched && !f.scan_due && f.pending.is_empty())
            .filter(|(_, f)| f.seal_at.is_some_and(|t| now >= t))
            .map(|(n, _)| n.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let quiet_before = now_ns().saturating_sub(QUIET.as_nanos() as i64);
        let mut candidates = Vec::new();
        for name in due {
            let mtime = fs::metadata(self.layout.results(&name)).map(|m| cursor::mtime_ns(&m));
            let Some(f) = self.followed.get_mut(&name) else { continue };
            match mtime {
                Ok(m) if m <= quiet_before => {
                    f.seal_at = None;
                    candidates.push((name, m));
                }
                // Changed within the last second (without an event of ours yet): later.
                Ok(_) => f.seal_at = Some(now + QUIET),
                Err(_) => f.seal_at = None,
            }
        }
        // An arrival queued before the stat unseals its folder (it sets `seal_at` again).
        self.read_watch();
        for (name, mtime) in candidates {
            let Some(f) = self.followed.get_mut(&name) else { continue };
            if f.pending.is_empty() && f.seal_at.is_none() && f.cursor.sealed_ns != Some(mtime) {
                f.cursor.sealed_ns = Some(mtime);
                self.dirty = true;
            }
        }
    }
}
