//! The folder side of a migration: one worker's queue (`tasks/W/`, and `.inflight/` where a
//! stopped worker keeps the tasks waiting for a retry), its dead letters (`dlq/W/`, with the
//! originals kept in `tasks/W/.rejected/`), read in the worker's order and written as the
//! worker writes them (synced, renamed without replacing anything, the folder synced).
//!
//! A running worker holds an flock (on the queue folder, or `LOCK_DIR/W.lock`): the migration
//! takes the same lock, so a worker cannot start while its queue is moved, and one already
//! running is found.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::format::records::Heartbeat;
use crate::spool::layout::{self, classify, Layout, NameKind, WorkerFolders};
use crate::sys::durable;

/// A record read from a folder: its name's stem (a task id, a dead letter's name), its file
/// and bytes, and its mtime (ms), which orders the queue.
#[derive(Clone, Debug)]
pub(crate) struct FileRecord {
    pub(crate) stem: String,
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
    pub(crate) mtime_ms: u128,
}

/// Why the folders cannot be used now.
#[derive(Debug)]
pub(crate) enum Busy {
    /// A worker runs (it holds the lock, or its heartbeat is live): stop it first.
    Running(String),
    Io(String),
}

/// One worker's folders, locked.
pub(crate) struct Folders {
    pub(crate) dirs: WorkerFolders,
    _lock: Option<File>,
}

fn flock(path: &Path, create: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).custom_flags(libc::O_CLOEXEC);
    if create {
        o.write(true).create(true).mode(0o640);
    } else {
        o.custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC);
    }
    let f = o.open(path)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Takes `path`'s lock as the worker does; `Busy::Running` when a worker holds it.
pub(crate) fn lock(path: &Path, create: bool, worker: &str) -> Result<Option<File>, Busy> {
    if create {
        if let Some(dir) = path.parent() {
            durable::create_dir(dir)
                .map_err(|e| Busy::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
    } else if !path.is_dir() {
        return Ok(None);
    }
    match flock(path, create) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Err(Busy::Running(format!(
            "worker-watcher is running for worker {worker:?} (it holds the lock on {}); stop it first",
            path.display()
        ))),
        Err(e) => Err(Busy::Io(format!("cannot lock {}: {e}", path.display()))),
    }
}

/// Whether a heartbeat says its worker runs: not `stopped`, and not stale.
pub(crate) fn live(bytes: &[u8], now: f64) -> Option<Heartbeat> {
    let h: Heartbeat = serde_json::from_slice(bytes).ok()?;
    (h.status != "stopped" && !h.is_stale(now)).then_some(h)
}

impl Folders {
    /// Locks worker `worker`'s folders (its queue folder or LOCK_DIR file); refuses while a
    /// worker holds them or its heartbeat is live (a worker on another host sharing them).
    pub(crate) fn open(paths: &Layout, worker: &str, now: f64) -> Result<Folders, Busy> {
        let dirs = paths.worker_folders(worker);
        let lock = match paths.lock_file(worker) {
            Some(file) => lock(&file, true, worker)?,
            None => lock(&dirs.queue, false, worker)?,
        };
        if let Ok(bytes) = fs::read(paths.heartbeat(worker)) {
            if let Some(h) = live(&bytes, now) {
                return Err(Busy::Running(format!(
                    "worker {worker:?} is running on host {} (its heartbeat {} is live); stop it first",
                    h.hostname,
                    paths.heartbeat(worker).display()
                )));
            }
        }
        Ok(Folders { dirs, _lock: lock })
    }

    /// The folders of `worker`, not locked: where an export writes (a worker running there
    /// takes what arrives, as from any producer).
    pub(crate) fn unlocked(paths: &Layout, worker: &str) -> Folders {
        Folders { dirs: paths.worker_folders(worker), _lock: None }
    }

    /// The queued tasks and those a stopped worker left in `.inflight/`, oldest first.
    pub(crate) fn tasks(&self) -> io::Result<Vec<FileRecord>> {
        let mut out = records(&self.dirs.queue)?;
        out.extend(records(&self.dirs.inflight)?);
        out.sort_by(|a, b| (a.mtime_ms, &a.stem).cmp(&(b.mtime_ms, &b.stem)));
        Ok(out)
    }

    /// The dead letters, oldest first.
    pub(crate) fn dead_letters(&self) -> io::Result<Vec<FileRecord>> {
        let mut out = records(&self.dirs.dlq)?;
        out.sort_by(|a, b| (a.mtime_ms, &a.stem).cmp(&(b.mtime_ms, &b.stem)));
        Ok(out)
    }

    /// The original kept beside a dead letter, if any.
    pub(crate) fn original(&self, letter: &str) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.dirs.original(&layout::record_name(letter));
        fs::read(&path).ok().map(|b| (path, b))
    }

    /// A task of id `id` in the queue or `.inflight/`, with its bytes.
    pub(crate) fn task(&self, id: &str) -> Option<Vec<u8>> {
        let name = layout::record_name(id);
        [&self.dirs.queue, &self.dirs.inflight].iter().find_map(|d| fs::read(d.join(&name)).ok())
    }

    pub(crate) fn has_result(&self, id: &str) -> bool {
        self.dirs.result(id).symlink_metadata().is_ok()
    }

    pub(crate) fn dead_letter(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.dirs.dlq.join(layout::record_name(name))).ok()
    }

    /// Adds a task to the queue, as a producer does (never over another file).
    pub(crate) fn add_task(&self, id: &str, bytes: Vec<u8>) -> io::Result<PathBuf> {
        add(&self.dirs.queue, &layout::record_name(id), bytes)
    }

    /// Adds a dead letter, and the original it kept.
    pub(crate) fn add_dead_letter(
        &self,
        name: &str,
        bytes: Vec<u8>,
        original: Option<Vec<u8>>,
    ) -> io::Result<PathBuf> {
        if let Some(orig) = original {
            let path = self.dirs.original(&layout::record_name(name));
            let file = path.file_name().map(OsString::from).unwrap_or_default();
            durable::create_dir(&self.dirs.rejected)?;
            match add(&self.dirs.rejected, &file.to_string_lossy(), orig) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        add(&self.dirs.dlq, &layout::record_name(name), bytes)
    }

    /// Moves a record (and the original beside it) into `.imported/` of its folder: kept,
    /// never taken again.
    pub(crate) fn set_aside(&self, path: &Path) -> io::Result<()> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Ok(()) };
        // A task left in .inflight/ goes to the queue's .imported/.
        let base = if dir == self.dirs.inflight { self.dirs.queue.as_path() } else { dir };
        let to = layout::imported_dir(base);
        durable::recreate_dir(&to)?;
        let mut target = to.join(name);
        if target.symlink_metadata().is_ok() {
            let ms = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            target = to.join(format!("{}.{ms}", name.to_string_lossy()));
        }
        fs::rename(path, &target)?;
        durable::sync_dir(&to)?;
        durable::sync_dir(dir)
    }
}

fn add(dir: &Path, name: &str, bytes: Vec<u8>) -> io::Result<PathBuf> {
    durable::create_dir(dir)?;
    let how = durable::Publish { temp_prefix: durable::TEMP_PREFIX, alternative: None, owner: (None, None) };
    let placed = durable::publish(dir, vec![(OsString::from(name), bytes)], &how).pop();
    placed.unwrap_or_else(|| Err(io::Error::other("nothing written"))).map(|n| dir.join(n))
}

/// The records (`<stem>.json`, regular files) of a folder; none when it does not exist.
fn records(dir: &Path) -> io::Result<Vec<FileRecord>> {
    let rd = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut out = Vec::new();
    for dirent in rd {
        let dirent = dirent?;
        let name = dirent.file_name();
        if classify(&name) != NameKind::Task {
            continue;
        }
        let meta = dirent.metadata()?;
        let Some(stem) = name.to_str().and_then(layout::record_stem) else { continue };
        if !meta.is_file() {
            continue;
        }
        let mtime_ms = meta.modified()?.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = dirent.path();
        out.push(FileRecord { stem: stem.to_owned(), bytes: fs::read(&path)?, path, mtime_ms });
    }
    Ok(out)
}
