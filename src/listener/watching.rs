//! Which workers the listener follows and what it watches of them: their result folders,
//! the heartbeats folder, and (when WORKERS is unset) the folders where a new worker shows
//! up. Scans at start-up, after an inotify overflow or a lost watch; seals of quiet result
//! folders (see [`super::cursor`]).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cursor::{self, is_result_name, QUIET};
use super::freshness::Freshness;
use super::taken::Taken;
use super::{health, Folder, Listener, Live, MAX_WORKERS, RETRY_IO};
use crate::config::worker_name::is_allowed;
use crate::error::Fatal;
use crate::log::ids;
use crate::sys::clock::now_f64;
use crate::sys::durable;
use crate::sys::inotify::Change;

pub(super) fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

impl Listener {
    fn results_dir(&self, worker: &str) -> PathBuf {
        self.cfg.paths.results.join(worker)
    }

    /// The path of a top folder (the results, heartbeats or tasks folder).
    fn root_dir(&self, folder: &Folder) -> PathBuf {
        let p = &self.cfg.paths;
        match folder {
            Folder::Heartbeats => p.heartbeats.clone(),
            Folder::Tasks => p.tasks.clone(),
            Folder::Results(w) => p.results.join(w),
            Folder::ResultsRoot => p.results.clone(),
        }
    }

    /// Start-up: the folders, their watches, every worker's scan and heartbeat.
    pub(super) fn start_watching(&mut self) -> Result<(), Fatal> {
        let p = &self.cfg.paths;
        let mut folders = vec![
            (p.results.clone(), Folder::ResultsRoot, "RESULT_DIR"),
            (p.heartbeats.clone(), Folder::Heartbeats, "HEARTBEAT_DIR"),
        ];
        if self.cfg.workers.is_none() {
            folders.push((p.tasks.clone(), Folder::Tasks, "TASK_DIR"));
        }
        for (dir, folder, var) in folders {
            durable::create_dir(&dir)
                .and_then(|()| self.watch.add(&dir, folder))
                .map_err(|e| Fatal::io(format!("{var}: {}: {e}", dir.display()), &e))?;
        }
        self.rescan();
        Ok(())
    }

    /// Every worker found again: watches re-added, folders scanned, heartbeats read.
    pub(super) fn rescan(&mut self) {
        for folder in std::mem::take(&mut self.lost_roots) {
            let dir = self.root_dir(&folder);
            if durable::recreate_dir(&dir).and_then(|()| self.watch.add(&dir, folder.clone())).is_err() {
                self.lost_roots.push(folder);
                self.retry_io_at.get_or_insert(Instant::now() + RETRY_IO);
                self.retry_scans = true;
            } else {
                self.log.info("watching the folder again", &[("FOLDER", &dir.display())]);
            }
        }
        for (name, named) in self.wanted() {
            self.follow(&name, named);
        }
        let names: Vec<String> = self.workers.keys().cloned().collect();
        for name in names {
            self.watch_results(&name);
            self.queue_scan(&name);
            self.read_heartbeat(&name, false);
        }
    }

    /// Queues a scan of `worker`'s result folder, done by [`Listener::scan_some`].
    fn queue_scan(&mut self, worker: &str) {
        if let Some(live) = self.workers.get_mut(worker).filter(|l| !l.scan_due) {
            live.scan_due = true;
            self.to_scan.push_back(worker.to_string());
        }
    }

    /// Before READY: the folders whose seal holds need no scan (one `stat` each); the others
    /// stay queued, to be listed after READY, a few each turn.
    pub(super) fn skip_sealed(&mut self) {
        for name in std::mem::take(&mut self.to_scan) {
            let sealed = self.state.workers.get(&name).and_then(|w| w.cursor.sealed_ns);
            let now = fs::metadata(self.results_dir(&name)).map(|m| cursor::mtime_ns(&m)).ok();
            match self.workers.get_mut(&name) {
                Some(live) if sealed.is_some() && sealed == now => live.scan_due = false,
                _ => self.to_scan.push_back(name),
            }
        }
    }

    /// Scans queued folders until `budget` is spent (at least one), so that a start-up with
    /// many changed folders never holds the loop for long.
    pub(super) fn scan_some(&mut self, budget: Duration) {
        let start = Instant::now();
        while let Some(name) = self.to_scan.pop_front() {
            if let Some(live) = self.workers.get_mut(&name) {
                live.scan_due = false;
                self.scan(&name);
            }
            if start.elapsed() >= budget {
                break;
            }
        }
    }

    /// The workers to follow: WORKERS, or every name found under tasks/, results/ and
    /// heartbeats/ (and those followed before).
    fn wanted(&self) -> Vec<(String, bool)> {
        if let Some(list) = &self.cfg.workers {
            return list.iter().map(|w| (w.clone(), true)).collect();
        }
        let p = &self.cfg.paths;
        let mut names: Vec<String> = self.state.workers.keys().cloned().collect();
        for dir in [&p.tasks, &p.results] {
            names.extend(list(dir).into_iter().filter(|n| is_allowed(n) && dir.join(n).is_dir()));
        }
        names.extend(list(&p.heartbeats).iter().filter_map(|n| n.strip_suffix(".json")).map(str::to_string));
        names.sort();
        names.dedup();
        names.into_iter().filter(|n| is_allowed(n)).map(|n| (n, false)).collect()
    }

    /// Starts following `name`, if it is not followed yet. Returns whether it is followed.
    fn follow(&mut self, name: &str, named: bool) -> bool {
        if self.workers.contains_key(name) {
            return true;
        }
        if self.workers.len() >= MAX_WORKERS {
            self.log.warn("too many workers; this one is not followed", &[("WORKER", &name)]);
            return false;
        }
        self.workers.insert(name.to_string(), Live { named, ..Live::default() });
        let mark = self.state.workers.entry(name.to_string()).or_default().taken;
        let taken = Taken::open(&self.cfg.state_dir(), name, mark).unwrap_or_else(|e| {
            self.log.error(
                "cannot read the log of results taken; results changed since are counted again",
                &[("WORKER", &name), ("ERROR", &e)],
            );
            Taken::default()
        });
        self.taken.insert(name.to_string(), taken);
        true
    }

    /// Watches `results/<worker>/`, creating it for a worker named in WORKERS.
    fn watch_results(&mut self, worker: &str) {
        let dir = self.results_dir(worker);
        let Some(live) = self.workers.get(worker) else { return };
        if live.watched {
            return;
        }
        if live.named {
            if let Err(e) = durable::create_dir(&dir) {
                self.log.error("cannot create a result folder", &[("WORKER", &worker), ("ERROR", &e)]);
            }
        }
        if !dir.is_dir() {
            return;
        }
        match self.watch.add_with_removals(&dir, Folder::Results(worker.to_string())) {
            Ok(()) => {
                if let Some(l) = self.workers.get_mut(worker) {
                    l.watched = true;
                }
            }
            Err(e) => {
                self.retried_error("cannot watch a result folder", &[("WORKER", &worker), ("ERROR", &e)]);
                self.retry_io_at.get_or_insert(Instant::now() + RETRY_IO);
                self.retry_scans = true;
            }
        }
    }

    /// Finds the results of `worker` its cursor has not taken, and queues them.
    fn scan(&mut self, worker: &str) {
        let dir = self.results_dir(worker);
        let ws = self.state.workers.entry(worker.to_string()).or_default();
        let found = match cursor::scan(&dir, &ws.cursor) {
            Ok(s) => s,
            Err(e) => {
                self.retried_error(
                    "cannot list a result folder; trying again",
                    &[("WORKER", &worker), ("ERROR", &e)],
                );
                self.retry_io_at.get_or_insert(Instant::now() + RETRY_IO);
                self.retry_scans = true;
                return;
            }
        };
        if found.unchanged {
            return;
        }
        let mut present = found.present;
        if let Some(t) = self.taken.get_mut(worker) {
            t.keep_only(&mut present);
        }
        let backfill = self.cfg.tuning.backfill.as_nanos().min(i64::MAX as u128) as i64;
        ws.cursor.known(now_ns().saturating_sub(backfill));
        self.state_dirty = true;
        if let Some(live) = self.workers.get_mut(worker) {
            live.pending.extend(found.new);
            if live.watched {
                live.seal_at = Some(Instant::now() + QUIET);
            }
        }
    }

    /// Reads `worker`'s heartbeat; `written`: inotify has just reported it written (see
    /// [`super::freshness`]).
    fn read_heartbeat(&mut self, worker: &str, written: bool) {
        let path = self.cfg.paths.heartbeats.join(format!("{worker}.json"));
        let reading = health::read(&path);
        if matches!(reading, health::Reading::Beat(_)) {
            let ws = self.state.workers.entry(worker.to_string()).or_default();
            if !ws.health.seen_heartbeat {
                ws.health.seen_heartbeat = true;
                self.state_dirty = true;
            }
        }
        if let Some(live) = self.workers.get_mut(worker) {
            live.fresh = match &reading {
                health::Reading::Beat(b) => {
                    Some(Freshness::read(live.fresh, b.timestamp, written, Instant::now(), now_f64()))
                }
                _ => None,
            };
            live.reading = reading;
        }
    }

    /// Reads what inotify has queued and acts on it.
    pub(super) fn read_watch(&mut self) {
        let mut changes = Vec::new();
        if let Err(e) = self.watch.read(&mut changes) {
            self.log.error("cannot read inotify events; rescanning", &[("ERROR", &e)]);
            self.rescan_due = true;
        }
        for change in changes {
            match change {
                Change::Arrived(Folder::Results(w), name) => self.result_arrived(&w, name.to_str()),
                Change::Created(Folder::Results(w), _) => self.touched(&w),
                Change::Removed(Folder::Results(w), name) => self.result_removed(&w, name.to_str()),
                Change::Arrived(Folder::Heartbeats, name) => {
                    let stem = name.to_str().and_then(|n| n.strip_suffix(".json")).filter(|n| is_allowed(n));
                    if let Some(worker) = stem.map(str::to_string) {
                        if self.workers.contains_key(&worker) || self.discover(&worker) {
                            self.read_heartbeat(&worker, true);
                        }
                    }
                }
                Change::Created(f @ (Folder::Tasks | Folder::ResultsRoot), name)
                | Change::Arrived(f @ (Folder::Tasks | Folder::ResultsRoot), name) => {
                    let parent =
                        if f == Folder::Tasks { &self.cfg.paths.tasks } else { &self.cfg.paths.results };
                    let folder = name.to_str().filter(|n| is_allowed(n) && parent.join(n).is_dir());
                    if let Some(n) = folder.map(str::to_string) {
                        if self.workers.contains_key(&n) {
                            self.watch_results(&n);
                            self.queue_scan(&n);
                        } else if self.discover(&n) {
                            self.read_heartbeat(&n, false);
                        }
                    }
                }
                Change::Overflow => {
                    self.log.warn("inotify queue overflowed; rescanning", &[]);
                    self.rescan_due = true;
                }
                Change::Lost(folder) => self.lost(folder),
                _ => {}
            }
        }
    }

    /// A new worker name seen in a folder: followed when WORKERS is unset. The caller reads
    /// its heartbeat.
    fn discover(&mut self, name: &str) -> bool {
        if self.cfg.workers.is_some() || !self.follow(name, false) {
            return false;
        }
        self.log.info("following a new worker", &[("WORKER", &name)]);
        self.watch_results(name);
        self.queue_scan(name);
        true
    }

    fn result_arrived(&mut self, worker: &str, name: Option<&str>) {
        self.touched(worker);
        let Some(name) = name.filter(|n| is_result_name(n)) else { return };
        let path = self.results_dir(worker).join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else { return };
        let key = (cursor::mtime_ns(&meta), name.to_string());
        let is_new = self.state.workers.get(worker).is_some_and(|ws| ws.cursor.is_new(&key));
        if let Some(live) = self.workers.get_mut(worker).filter(|_| is_new) {
            live.pending.insert(key);
        }
    }

    /// A result was removed or moved away (by `watcherctl dlq retry`, a clean-up): it is
    /// forgotten, and a new result of its task is a new result.
    fn result_removed(&mut self, worker: &str, name: Option<&str>) {
        self.touched(worker);
        let name = name.filter(|n| is_result_name(n));
        if let (Some(t), Some(name)) = (self.taken.get_mut(worker), name) {
            t.forget(name);
            self.state_dirty = true;
        }
    }

    /// Something changed in `worker`'s result folder: it is not sealed until quiet again.
    fn touched(&mut self, worker: &str) {
        if let Some(live) = self.workers.get_mut(worker) {
            live.seal_at = Some(Instant::now() + QUIET);
        }
    }

    fn lost(&mut self, folder: Folder) {
        match folder {
            Folder::Results(w) => {
                if let Some(l) = self.workers.get_mut(&w) {
                    l.watched = false;
                }
                self.log.warn("result folder removed or moved; watching for it again", &[("WORKER", &w)]);
                self.retry_io_at.get_or_insert(Instant::now() + RETRY_IO);
                self.retry_scans = true;
            }
            other => {
                let dir = self.root_dir(&other);
                self.log.warn(
                    "a watched folder was removed or moved; re-creating it and watching it again",
                    &[("MESSAGE_ID", &ids::FOLDER_RECREATED), ("FOLDER", &dir.display())],
                );
                if let Err(e) = durable::recreate_dir(&dir).and_then(|()| self.watch.add(&dir, other.clone()))
                {
                    self.log.error(
                        "cannot watch the folder again; trying again",
                        &[("FOLDER", &dir.display()), ("ERROR", &e)],
                    );
                    self.retry_io_at.get_or_insert(Instant::now() + RETRY_IO);
                    self.retry_scans = true;
                    self.lost_roots.push(other);
                }
                self.rescan_due = true;
            }
        }
    }

    /// Seals the result folders that have been quiet: see [`cursor`].
    pub(super) fn seal_quiet(&mut self, now: Instant) {
        if !self.staged.is_empty() {
            return;
        }
        let due: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, l)| l.watched && !l.scan_due && l.pending.is_empty())
            .filter(|(_, l)| l.seal_at.is_some_and(|t| now >= t))
            .map(|(n, _)| n.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let quiet_before = now_ns().saturating_sub(QUIET.as_nanos() as i64);
        let mut candidates = Vec::new();
        for name in due {
            let mtime = fs::metadata(self.results_dir(&name)).map(|m| cursor::mtime_ns(&m));
            let Some(live) = self.workers.get_mut(&name) else { continue };
            match mtime {
                Ok(m) if m <= quiet_before => {
                    live.seal_at = None;
                    candidates.push((name, m));
                }
                // Changed within the last second (without an event of ours yet): later.
                Ok(_) => live.seal_at = Some(now + QUIET),
                Err(_) => live.seal_at = None,
            }
        }
        // An arrival queued before the stat unseals its folder (it sets `seal_at` again).
        self.read_watch();
        for (name, mtime) in candidates {
            let quiet = self.workers.get(&name).is_some_and(|l| l.pending.is_empty() && l.seal_at.is_none());
            let Some(ws) = self.state.workers.get_mut(&name).filter(|_| quiet) else { continue };
            if ws.cursor.sealed_ns != Some(mtime) {
                ws.cursor.sealed_ns = Some(mtime);
                self.state_dirty = true;
            }
        }
    }
}

/// Names in `dir` (none if it cannot be listed).
fn list(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}
