//! The spool as watcherctl sees it: where each worker's files are, which workers exist, and
//! folders and files made so that the daemons can still use them.
//!
//! The daemons run as their own user; an operator often runs watcherctl as root. What
//! watcherctl creates takes the owner and group of the folder it is made in (root may give
//! both; another user gives the group when it belongs to it), so a task submitted by root
//! stays readable by its worker.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::exit::{CtlError, IO, NO_WORKER, USAGE};
use crate::config::worker_name::{self, is_allowed};
use crate::config::Paths;
use crate::sys::durable;

/// The folders of one spool root.
#[derive(Clone, Debug)]
pub struct Spool {
    pub paths: Paths,
}

impl Spool {
    pub fn queue(&self, worker: &str) -> PathBuf {
        self.paths.tasks.join(worker)
    }

    pub fn inflight(&self, worker: &str) -> PathBuf {
        self.queue(worker).join(".inflight")
    }

    pub fn results(&self, worker: &str) -> PathBuf {
        self.paths.results.join(worker)
    }

    pub fn result_file(&self, worker: &str, id: &str) -> PathBuf {
        self.results(worker).join(format!("{id}.json"))
    }

    pub fn dlq(&self, worker: &str) -> PathBuf {
        self.paths.dlq.join(worker)
    }

    pub fn heartbeat(&self, worker: &str) -> PathBuf {
        self.paths.heartbeats.join(format!("{worker}.json"))
    }

    pub fn pipe(&self, worker: &str) -> PathBuf {
        self.paths.pipes.join(format!("{worker}.pipe"))
    }

    /// `triggers/orchestrator/`: orchestrator-listener's events.
    pub fn events(&self) -> PathBuf {
        self.paths.triggers.join("orchestrator")
    }

    /// A worker exists for `submit` when it has a queue or a heartbeat: a typo matches neither.
    pub fn accepts_tasks(&self, worker: &str) -> bool {
        self.queue(worker).is_dir() || exists(&self.heartbeat(worker))
    }

    /// Refuses a worker none of whose folders exist (exit 69).
    pub fn require_known(&self, worker: &str) -> Result<(), CtlError> {
        check_name(worker)?;
        let known = self.accepts_tasks(worker) || self.results(worker).is_dir() || self.dlq(worker).is_dir();
        if known {
            Ok(())
        } else {
            Err(no_such_worker(self, worker))
        }
    }

    /// Where a task of this id waits, if it is queued or claimed under its own name.
    pub fn pending(&self, worker: &str, id: &str) -> Option<&'static str> {
        let name = format!("{id}.json");
        if exists(&self.queue(worker).join(&name)) {
            Some("queued")
        } else if exists(&self.inflight(worker).join(&name)) {
            Some("in flight")
        } else {
            None
        }
    }

    /// Every worker with a heartbeat or a queue folder, by name.
    pub fn workers(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for name in list(&self.paths.heartbeats) {
            if let Some(stem) = name.strip_suffix(".json").filter(|s| is_allowed(s)) {
                names.insert(stem.to_string());
            }
        }
        for name in list(&self.paths.tasks) {
            if is_allowed(&name) && self.paths.tasks.join(&name).is_dir() {
                names.insert(name);
            }
        }
        names
    }
}

pub fn no_such_worker(spool: &Spool, worker: &str) -> CtlError {
    CtlError::new(
        NO_WORKER,
        format!(
            "no worker {worker:?}: it has no queue ({}) and no heartbeat; check the name, or use `submit --create` to make its queue",
            spool.queue(worker).display()
        ),
    )
}

pub fn check_name(worker: &str) -> Result<(), CtlError> {
    worker_name::check(worker).map_err(|e| CtlError::new(USAGE, e))
}

/// Reads a file of the spool (never waiting on a FIFO, at most `max` bytes); `None` when it
/// does not exist. An error names the file.
pub fn read(path: &Path, max: u64) -> Result<Option<Vec<u8>>, CtlError> {
    match crate::spool::read::read(path, max) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(CtlError::new(IO, format!("cannot read {}: {e}", path.display()))),
    }
}

pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Names in a folder that are neither dot-files nor unreadable; none if it is missing.
pub fn list(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The owner and group a new file in `dir` should get (see the module's documentation).
pub fn owner_for(dir: &Path) -> (Option<u32>, Option<u32>) {
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
pub fn create_dir(dir: &Path) -> io::Result<()> {
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
