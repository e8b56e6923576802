//! What the folder backend watches for the listener: `results/<worker>/` of each worker
//! followed, `heartbeats/`, and the folders where a new worker shows up (`results/`, and
//! `tasks/` when discovering). inotify's changes become [`Notices`] for the loop, or work of
//! the backend's own (a result to take, a folder to list again); a lost watch is set again.

use std::fs;
use std::path::PathBuf;

use super::{note, Followed, FsListener, Taken};
use crate::config::worker_name::is_allowed;
use crate::log::ids;
use crate::spool::error::OpenError;
use crate::spool::layout;
use crate::spool::listener::Loudness;
use crate::sys::durable;
use crate::sys::inotify::Change;

/// A watched folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Folder {
    /// `results/<worker>/`.
    Results(String),
    /// `results/`: new worker folders.
    ResultsRoot,
    /// `tasks/`: new worker queues (when discovering).
    Tasks,
    Heartbeats,
}

/// Names in `dir` (none if it cannot be listed).
fn list(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

impl FsListener {
    /// The path of a watched folder.
    pub(super) fn dir_of(&self, folder: &Folder) -> PathBuf {
        let l = &self.layout;
        match folder {
            Folder::Heartbeats => l.heartbeats.clone(),
            Folder::Tasks => l.tasks.clone(),
            Folder::Results(w) => l.results(w),
            Folder::ResultsRoot => l.results.clone(),
        }
    }

    /// Start-up: the top folders made and watched.
    pub(super) fn watch_roots(&mut self) -> Result<(), OpenError> {
        let mut folders = vec![(Folder::ResultsRoot, "RESULT_DIR"), (Folder::Heartbeats, "HEARTBEAT_DIR")];
        if self.discover {
            folders.push((Folder::Tasks, "TASK_DIR"));
        }
        for (folder, var) in folders {
            let dir = self.dir_of(&folder);
            durable::create_dir(&dir)
                .and_then(|()| self.watch.add(&dir, folder))
                .map_err(|e| OpenError::of_io(format!("{var}: {}: {e}", dir.display()), &e))?;
        }
        Ok(())
    }

    /// Every worker name found under `tasks/`, `results/` and `heartbeats/`.
    pub(super) fn found(&self) -> Vec<String> {
        let l = &self.layout;
        let mut names = Vec::new();
        for dir in [&l.tasks, &l.results] {
            names.extend(list(dir).into_iter().filter(|n| is_allowed(n) && dir.join(n).is_dir()));
        }
        names.extend(list(&l.heartbeats).iter().filter_map(|n| layout::record_stem(n)).map(str::to_string));
        names.sort();
        names.dedup();
        names.retain(|n| is_allowed(n));
        names
    }

    /// Starts following `name`, if it is not followed yet: its log of results taken read,
    /// its result folder watched and queued for a listing.
    pub(super) fn follow_worker(&mut self, name: &str, named: bool) {
        if self.followed.contains_key(name) {
            return;
        }
        let position = self.saved.remove(name).unwrap_or_default();
        let taken = Taken::open(&self.layout, name, position.taken).unwrap_or_else(|e| {
            self.notes.push(note(
                Loudness::Error,
                "cannot read the log of results taken; results changed since are counted again",
                &[("WORKER", &name), ("ERROR", &e)],
            ));
            Taken::default()
        });
        let f = Followed { named, cursor: position.cursor, taken, ..Followed::default() };
        self.followed.insert(name.to_string(), f);
        self.watch_results(name);
        self.queue_scan(name);
    }

    /// Everything looked at again: lost watches set again, every result folder watched and
    /// queued for a listing.
    pub(super) fn rescan_all(&mut self) {
        for folder in std::mem::take(&mut self.lost_roots) {
            let dir = self.dir_of(&folder);
            if durable::recreate_dir(&dir).and_then(|()| self.watch.add(&dir, folder.clone())).is_err() {
                self.lost_roots.push(folder);
                self.retry_later();
            } else {
                self.notes.push(note(
                    Loudness::Info,
                    "watching the folder again",
                    &[("FOLDER", &dir.display())],
                ));
            }
        }
        let names: Vec<String> = self.followed.keys().cloned().collect();
        for name in names {
            self.watch_results(&name);
            self.queue_scan(&name);
        }
    }

    /// Queues a listing of `worker`'s result folder.
    pub(super) fn queue_scan(&mut self, worker: &str) {
        if let Some(f) = self.followed.get_mut(worker).filter(|f| !f.scan_due) {
            f.scan_due = true;
            self.to_scan.push_back(worker.to_string());
        }
    }

    /// Watches `results/<worker>/`, creating it for a worker named in WORKERS.
    fn watch_results(&mut self, worker: &str) {
        let dir = self.layout.results(worker);
        let Some(f) = self.followed.get(worker).filter(|f| !f.watched) else { return };
        if f.named {
            if let Err(e) = durable::create_dir(&dir) {
                let fields: [(&str, &dyn std::fmt::Display); 2] = [("WORKER", &worker), ("ERROR", &e)];
                self.notes.push(note(Loudness::Error, "cannot create a result folder", &fields));
            }
        }
        if !dir.is_dir() {
            return;
        }
        match self.watch.add_with_removals(&dir, Folder::Results(worker.to_string())) {
            Ok(()) => {
                if let Some(f) = self.followed.get_mut(worker) {
                    f.watched = true;
                }
            }
            Err(e) => {
                let fields: [(&str, &dyn std::fmt::Display); 2] = [("WORKER", &worker), ("ERROR", &e)];
                self.notes.push(note(Loudness::Retried, "cannot watch a result folder", &fields));
                self.retry_later();
            }
        }
    }

    /// Reads what inotify has queued and acts on it.
    pub(super) fn read_watch(&mut self) {
        let mut changes = Vec::new();
        if let Err(e) = self.watch.read(&mut changes) {
            self.notes.push(note(
                Loudness::Error,
                "cannot read inotify events; rescanning",
                &[("ERROR", &e)],
            ));
            self.rescan_due = true;
        }
        for change in changes {
            match change {
                Change::Arrived(Folder::Results(w), name) => self.result_arrived(&w, name.to_str()),
                Change::Created(Folder::Results(w), _) => self.touched(&w),
                Change::Removed(Folder::Results(w), name) => self.result_removed(&w, name.to_str()),
                Change::Arrived(Folder::Heartbeats, name) => {
                    let stem = name.to_str().and_then(layout::record_stem).filter(|n| is_allowed(n));
                    if let Some(worker) = stem {
                        self.notices.heartbeats.push(worker.to_string());
                    }
                }
                Change::Created(f @ (Folder::Tasks | Folder::ResultsRoot), name)
                | Change::Arrived(f @ (Folder::Tasks | Folder::ResultsRoot), name) => {
                    let parent = self.dir_of(&f);
                    let folder = name.to_str().filter(|n| is_allowed(n) && parent.join(n).is_dir());
                    match folder.map(str::to_string) {
                        Some(n) if self.followed.contains_key(&n) => {
                            self.watch_results(&n);
                            self.queue_scan(&n);
                        }
                        Some(n) => self.notices.appeared.push(n),
                        None => {}
                    }
                }
                Change::Overflow => {
                    self.notes.push(note(Loudness::Warn, "inotify queue overflowed; rescanning", &[]));
                    self.rescan_due = true;
                }
                Change::Lost(folder) => self.lost(folder),
                _ => {}
            }
        }
    }

    fn lost(&mut self, folder: Folder) {
        match folder {
            Folder::Results(w) => {
                if let Some(f) = self.followed.get_mut(&w) {
                    f.watched = false;
                }
                let fields: [(&str, &dyn std::fmt::Display); 1] = [("WORKER", &w)];
                self.notes.push(note(
                    Loudness::Warn,
                    "result folder removed or moved; watching for it again",
                    &fields,
                ));
                self.retry_later();
            }
            other => {
                let dir = self.dir_of(&other);
                self.notes.push(note(
                    Loudness::Warn,
                    "a watched folder was removed or moved; re-creating it and watching it again",
                    &[("MESSAGE_ID", &ids::FOLDER_RECREATED), ("FOLDER", &dir.display())],
                ));
                if let Err(e) = durable::recreate_dir(&dir).and_then(|()| self.watch.add(&dir, other.clone()))
                {
                    self.notes.push(note(
                        Loudness::Error,
                        "cannot watch the folder again; trying again",
                        &[("FOLDER", &dir.display()), ("ERROR", &e)],
                    ));
                    self.retry_later();
                    self.lost_roots.push(other);
                }
                self.rescan_due = true;
            }
        }
    }
}
