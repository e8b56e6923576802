//! watcherctl's spool in folders (worker-watcher-tasks(5)): the same files as the daemons,
//! read with the same readers ([`crate::spool::read`]) and written with the same durable
//! writes ([`crate::sys::durable`]).
//!
//! The daemons run as their own user; an operator often runs watcherctl as root. What is
//! created here takes the owner and group of the folder it is made in (root may give both;
//! another user gives the group when it belongs to it), so a task submitted by root stays
//! readable by its worker.

mod events;
mod wait;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::worker_name::is_allowed;
use crate::format::records::Receipt;
use crate::format::records::{MAX_HEARTBEAT_BYTES, MAX_RECORD_BYTES};
use crate::format::task::{is_valid_id, State, STATE_KEY};
use crate::spool::control::{ControlSpool, EventFeed, Known, Listed, Pending, Place, Queued, Stored, Waiter};
use crate::spool::error::Error;
use crate::spool::layout::{self, Layout, NameKind};
use crate::spool::read;
use crate::sys::durable::{self, Publish};

/// Temp files of watcherctl in a queue (a dot-file: never taken for a task).
const TEMP_PREFIX: &str = ".watcherctl-";

/// The spool under one root, as watcherctl uses it.
#[derive(Clone, Debug)]
pub struct FsControl {
    layout: Layout,
}

impl FsControl {
    pub fn new(layout: Layout) -> FsControl {
        FsControl { layout }
    }

    /// Publishes `bytes` as `<id>.json` in `worker`'s queue, never replacing a file.
    fn publish(&self, worker: &str, id: &str, bytes: Vec<u8>) -> Result<Queued, Error> {
        let queue = self.layout.queue(worker);
        let how = Publish { temp_prefix: TEMP_PREFIX, alternative: None, owner: owner_for(&queue) };
        let name = layout::record_name(id);
        match durable::publish(&queue, vec![(name.clone().into(), bytes)], &how).pop() {
            Some(Ok(_)) => Ok(Queued::At(queue.join(name).display().to_string())),
            Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Queued::Taken),
            Some(Err(e)) => Err(Error::new("cannot queue in", queue.display(), e)),
            None => {
                Err(Error::new("cannot queue in", queue.display(), io::Error::other("nothing was queued")))
            }
        }
    }

    /// A claimed task's id, saved state and last receipt, read as untrusted (what cannot be
    /// read is left out: the row still lists the task, by its file's name).
    fn claimed_task(
        &self,
        worker: &str,
        path: &Path,
        stem: &str,
    ) -> (String, Option<State>, Option<Receipt>) {
        let doc = read_file(path, MAX_RECORD_BYTES)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let id = doc
            .as_ref()
            .and_then(|d| d.get("task_id")?.as_str().map(str::to_string))
            .filter(|id| is_valid_id(id))
            .unwrap_or_else(|| stem.to_string());
        let state = doc.and_then(|mut d| serde_json::from_value::<State>(d.get_mut(STATE_KEY)?.take()).ok());
        let receipt = read_file(&self.layout.receipt(worker, &id), MAX_HEARTBEAT_BYTES)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Receipt>(&b).ok())
            .filter(|r| r.task_id == id);
        (id, state, receipt)
    }

    /// The path of the original a dead letter kept, if it is where the worker keeps them.
    fn original_path(&self, worker: &str, letter: &Stored) -> Option<PathBuf> {
        let value: Value = serde_json::from_slice(&letter.bytes).ok()?;
        let path = PathBuf::from(value.get("original_file")?.as_str()?);
        (path.parent() == Some(self.layout.rejected(worker).as_path())).then_some(path)
    }
}

/// Reads a file of the spool (never waiting on a FIFO, at most `max` bytes); `None` when it
/// does not exist.
fn read_file(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    match read::read(path, max) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(Error::new("cannot read", path.display(), e.into())),
    }
}

fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Names in a folder that are neither dot-files nor not UTF-8; none if it is missing.
fn list(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The owner and group a new file in `dir` should get (see the module's documentation).
fn owner_for(dir: &Path) -> (Option<u32>, Option<u32>) {
    let Ok(meta) = fs::metadata(dir) else {
        return (None, None);
    };
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    if uid.is_root() {
        return (
            Some(meta.uid()).filter(|u| *u != uid.as_raw()),
            Some(meta.gid()).filter(|g| *g != gid.as_raw()),
        );
    }
    let member = nix::unistd::getgroups().is_ok_and(|gs| gs.iter().any(|g| g.as_raw() == meta.gid()));
    (None, Some(meta.gid()).filter(|g| *g != gid.as_raw() && member))
}

/// Creates `dir` (mode 0750) and what is missing above it, each owned like its parent.
fn create_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir(parent)?;
    }
    match durable::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let (uid, gid) = dir.parent().map_or((None, None), owner_for);
    if (uid, gid) != (None, None) {
        nix::unistd::chown(dir, uid.map(Into::into), gid.map(Into::into))?;
    }
    if let Some(parent) = dir.parent() {
        durable::sync_dir(parent)?;
    }
    Ok(())
}

/// Moves `path` into `dir/.retried/` as `<stem>.<epoch ms>.json`, durably.
fn archive(dir: &Path, path: &Path, stem: &str) -> Result<(), Error> {
    let to_dir = layout::aside_dir(dir);
    create_dir(&to_dir).map_err(|e| Error::new("cannot create", to_dir.display(), e))?;
    let ms = (crate::sys::clock::now_f64() * 1000.0) as u128;
    let to = to_dir.join(layout::aside_name(stem, ms));
    durable::rename_noreplace(path, &to)
        .and_then(|()| durable::sync_dir(&to_dir))
        .and_then(|()| durable::sync_dir(dir))
        .map_err(|e| Error::new(format!("cannot move {} to", path.display()), to.display(), e))
}

fn remove(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::new("cannot remove", path.display(), e)),
        _ => Ok(()),
    }
}

impl ControlSpool for FsControl {
    fn locate(&self, place: Place) -> String {
        let path = match place {
            Place::Root => self.layout.root.clone(),
            Place::Queue(w) => self.layout.queue(w),
            Place::Heartbeat(w) => self.layout.heartbeat(w),
            Place::Result(w, id) => self.layout.result(w, id),
            Place::Events => self.layout.events(),
        };
        path.display().to_string()
    }

    fn workers(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for name in list(&self.layout.heartbeats) {
            if let Some(stem) = layout::record_stem(&name).filter(|s| is_allowed(s)) {
                names.insert(stem.to_string());
            }
        }
        for name in list(&self.layout.tasks) {
            if is_allowed(&name) && self.layout.queue(&name).is_dir() {
                names.insert(name);
            }
        }
        names
    }

    fn known(&self, worker: &str) -> Known {
        Known {
            queue: self.layout.queue(worker).is_dir(),
            heartbeat: exists(&self.layout.heartbeat(worker)),
            results: self.layout.results(worker).is_dir(),
            dead_letters: self.layout.dlq(worker).is_dir(),
        }
    }

    fn create_queue(&mut self, worker: &str) -> Result<(), Error> {
        let queue = self.layout.queue(worker);
        create_dir(&queue).map_err(|e| Error::new("cannot create", queue.display(), e))
    }

    fn pending(&self, worker: &str, id: &str) -> Option<Pending> {
        if exists(&self.layout.queued(worker, id)) {
            Some(Pending::Queued)
        } else if exists(&self.layout.claimed(worker, id)) {
            Some(Pending::InFlight)
        } else {
            None
        }
    }

    fn queued(&self, worker: &str) -> usize {
        let names = list(&self.layout.queue(worker));
        names.iter().filter(|n| layout::classify(n.as_ref()) == NameKind::Task).count()
    }

    fn tasks(&self, worker: &str) -> Result<Vec<Listed>, Error> {
        let requested: BTreeSet<String> = list(&self.layout.cancels(worker))
            .iter()
            .filter_map(|n| layout::record_stem(n))
            .map(str::to_string)
            .collect();
        let mut out = Vec::new();
        for (dir, pending) in
            [(self.layout.queue(worker), Pending::Queued), (self.layout.inflight(worker), Pending::InFlight)]
        {
            for name in list(&dir) {
                let Some(stem) = layout::record_stem(&name) else { continue };
                let path = dir.join(&name);
                let Ok(meta) = path.symlink_metadata() else { continue };
                let queued_at = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                let (id, state, receipt) = match pending {
                    Pending::Queued => (stem.to_string(), None, None),
                    Pending::InFlight => self.claimed_task(worker, &path, stem),
                };
                let cancel_requested = requested.contains(&id);
                out.push(Listed { id, pending, queued_at, state, receipt, cancel_requested });
            }
        }
        out.sort_by(|a, b| a.queued_at.cmp(&b.queued_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn request_cancel(&mut self, worker: &str, id: &str, by: &str) -> Result<(), Error> {
        let dir = self.layout.cancels(worker);
        create_dir(&dir).map_err(|e| Error::new("cannot create", dir.display(), e))?;
        let request = serde_json::json!({
            "task_id": id,
            "by": by,
            "requested_at": crate::sys::clock::rfc3339_now(),
        });
        let how = Publish { temp_prefix: TEMP_PREFIX, alternative: None, owner: owner_for(&dir) };
        let name = layout::record_name(id);
        match durable::publish(&dir, vec![(name.into(), crate::format::records::to_bytes(&request))], &how)
            .pop()
        {
            // One request per task: the one already there stands.
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Some(Err(e)) => Err(Error::new("cannot write a request in", dir.display(), e)),
            None => Err(Error::new(
                "cannot write a request in",
                dir.display(),
                io::Error::other("nothing written"),
            )),
        }
    }

    fn enqueue(&mut self, worker: &str, id: &str, task: Vec<u8>) -> Result<Queued, Error> {
        self.publish(worker, id, task)
    }

    fn pipe(&self, worker: &str) -> Option<PathBuf> {
        Some(self.layout.pipe(worker))
    }

    fn result(&self, worker: &str, id: &str) -> Result<Option<Vec<u8>>, Error> {
        read_file(&self.layout.result(worker, id), MAX_RECORD_BYTES)
    }

    fn result_exists(&self, worker: &str, id: &str) -> bool {
        exists(&self.layout.result(worker, id))
    }

    fn set_aside_result(&mut self, worker: &str, id: &str) -> Result<(), Error> {
        archive(&self.layout.results(worker), &self.layout.result(worker, id), id)
    }

    fn watch_results(&self, worker: &str) -> Result<Box<dyn Waiter>, Error> {
        let dir = self.layout.results(worker);
        match wait::Watcher::new(&dir) {
            Ok(w) => Ok(Box::new(w)),
            Err(e) => Err(Error::new("cannot watch", dir.display(), e)),
        }
    }

    fn heartbeat(&self, worker: &str) -> Result<Option<Vec<u8>>, Error> {
        read_file(&self.layout.heartbeat(worker), MAX_HEARTBEAT_BYTES)
    }

    fn dead_letters(&self, worker: &str) -> Result<Vec<Stored>, Error> {
        let dir = self.layout.dlq(worker);
        let mut out = Vec::new();
        for file in list(&dir) {
            let Some(name) = layout::record_stem(&file) else {
                continue;
            };
            let path = dir.join(&file);
            if let Some(bytes) = read_file(&path, MAX_RECORD_BYTES)? {
                out.push(Stored { name: name.to_string(), at: path.display().to_string(), bytes });
            }
        }
        Ok(out)
    }

    fn original(&self, worker: &str, letter: &Stored, max: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(path) = self.original_path(worker, letter) else {
            return Ok(None);
        };
        match read::read(&path, max) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => Err(Error::new("cannot read its original file", path.display(), e.into())),
        }
    }

    fn drop_original(&mut self, worker: &str, letter: &Stored) {
        if let Some(path) = self.original_path(worker, letter) {
            let _ = fs::remove_file(path);
        }
    }

    fn retire(&mut self, worker: &str, letter: &Stored) -> Result<(), Error> {
        archive(&self.layout.dlq(worker), Path::new(&letter.at), &letter.name)
    }

    fn purge(&mut self, worker: &str, letters: &[Stored]) -> Result<(), Error> {
        let rejected = self.layout.rejected(worker);
        for l in letters {
            // The original kept beside a dead letter goes with it.
            if let Some(orig) = self.original_path(worker, l) {
                remove(&orig)?;
            }
            remove(Path::new(&l.at))?;
        }
        for d in [&self.layout.dlq(worker), &rejected] {
            if d.is_dir() {
                durable::sync_dir(d).map_err(|e| Error::new("cannot sync", d.display(), e))?;
            }
        }
        Ok(())
    }

    fn events(&self, follow: bool) -> Result<Box<dyn EventFeed>, Error> {
        Ok(Box::new(events::FsEvents::open(self.layout.events(), follow)?))
    }
}
