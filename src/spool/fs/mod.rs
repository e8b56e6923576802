//! The folder spool (worker-watcher-tasks(5)): the queue is `tasks/<worker>/`, a claim is a
//! `rename(2)` into `tasks/<worker>/.inflight/`, outcomes are files written by group commit.
//!
//! One process per worker holds an flock for its whole life: on the queue folder, or on
//! `LOCK_DIR/<worker>.lock` when workers of one name on several hosts share the spool (each
//! host its own lock; the claim by rename keeps them from running a task twice).

pub mod control;
pub mod listener;

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token, Waker};
use serde_json::Value;

use super::layout::{self, Layout, WorkerFolders};
use super::read::{self, Writers};
use super::writer::{alternative, entry, os, remove_if_present, Staged, Writer};
use super::{
    CancelRequest, Claim, Done, Entry, EntryId, Ignored, Intake, Loaded, Op, OpKind, Rejected, Scan, Spool,
    Unfinished,
};
use crate::format::records::{to_bytes, Heartbeat, ResultHead, MAX_RECORD_BYTES};
use crate::format::task::{is_valid_id, Invalid, Task};
use crate::sys::durable;
use crate::sys::inotify::{Change, DirWatch};

/// Temp files of [`Spool::submit`] in the queue; the worker holding the lock is their only
/// writer, so it removes those a crash left.
const SUBMIT_TEMP_PREFIX: &str = ".ww-submit.";

/// How long failed writes wait before they are tried again.
const RETRY_WRITES: Duration = Duration::from_secs(1);

/// Bytes of a non-JSON file quoted in its dead letter.
const PREVIEW_BYTES: usize = 4096;

/// The largest request to cancel a task read.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// The largest spend ledger read (a day of minutes is about 40 KiB).
const MAX_LEDGER_BYTES: u64 = 16 << 20;

pub use super::layout::{classify, NameKind};

/// Why a name in the queue folder is not taken for a task.
const NOT_A_TASK: &str = "task files end in .json";

/// The folders the spool watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watched {
    Queue,
    /// Requests to cancel a task.
    Cancels,
    /// The queue's parent, for the queue's own removal.
    Parent,
}

pub use crate::spool::error::OpenError;

pub struct FsSpool {
    lock: File,
    /// LOCK_DIR's lock file; `None`: the lock is on the queue folder (re-taken when the
    /// folder is re-created).
    lock_file: Option<PathBuf>,
    watch: DirWatch<Watched>,
    watching: bool,
    layout: WorkerFolders,
    writer: Writer,
    /// Ops staged since the last batch was handed to the writer.
    staged: Vec<Staged>,
    /// Ops whose writing failed, tried again from `retry_at`.
    failed: Vec<Staged>,
    retry_at: Option<Instant>,
    /// Dead-letter names chosen and not yet written.
    dlq_names: HashSet<String>,
    /// Names put back in the queue whose own arrival is not to be reported.
    put_back: HashSet<OsString>,
    seq: u64,
    /// Folders found missing and made again by the writer, not yet reported.
    recreated: Vec<PathBuf>,
    /// Heartbeats written by the loop itself (see [`FsSpool::beat_alone`]).
    beats: durable::Batch<()>,
    /// The state the last heartbeat staged told, and whether the one staged now may be
    /// written by the loop ([`beat_in_place`]).
    beat_state: Option<String>,
    beat_here: bool,
}

fn lock(path: &Path, create: bool) -> io::Result<File> {
    let f = if create {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?
    } else {
        // The queue folder; O_DIRECTORY: anything else at its name is refused, never waited on.
        OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(path)?
    };
    crate::sys::flock::try_exclusive(&f)?;
    Ok(f)
}

/// How long a start waits for the lock of a worker that is still going away.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// `lock`, tried again for LOCK_PATIENCE while another process holds it. A worker killed with
/// SIGKILL can leave its lock held for a moment by a child forked just before (between fork
/// and exec it has every fd); a restart at once must not take that for a second instance.
fn lock_patiently(path: &Path, create: bool) -> io::Result<File> {
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match lock(path, create) {
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Takes the local lock of a worker whose queue is on an engine ([`Layout::engine_lock_file`]),
/// making its folder if needed: one daemon per worker and host.
pub(crate) fn lock_engine_worker(worker: &str, paths: &Layout) -> Result<File, OpenError> {
    let path = paths.engine_lock_file(worker);
    let var = if paths.lock.is_some() { "LOCK_DIR" } else { "WATCHER_ROOT" };
    if let Some(dir) = path.parent() {
        durable::create_dir(dir)
            .map_err(|e| OpenError::of_io(format!("{var}: cannot create {}: {e}", dir.display()), &e))?;
    }
    lock_patiently(&path, true).map_err(|e| match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => OpenError::Locked(format!(
            "another worker-watcher is already running for worker {worker:?} on this host (it holds the lock on {})",
            path.display()
        )),
        _ => OpenError::of_io(format!("{var}: cannot lock {}: {e}", path.display()), &e),
    })
}

impl FsSpool {
    /// Creates the worker's folders (mode 0750), takes the worker's lock, and removes temp
    /// files a dead process left.
    pub fn open(worker: &str, paths: &Layout) -> Result<FsSpool, OpenError> {
        let layout = paths.worker_folders(worker);
        let spool = FsSpool {
            lock: File::open("/").map_err(|e| OpenError::Io(e.to_string()))?,
            lock_file: paths.lock_file(worker),
            watch: DirWatch::new().map_err(|e| OpenError::Io(e.to_string()))?,
            watching: false,
            writer: Writer::spawn(layout.clone())
                .map_err(|e| OpenError::Io(format!("cannot start the spool's writer thread: {e}")))?,
            layout,
            staged: Vec::new(),
            failed: Vec::new(),
            retry_at: None,
            dlq_names: HashSet::new(),
            put_back: HashSet::new(),
            seq: 0,
            recreated: Vec::new(),
            beats: durable::Batch::recreating(),
            beat_state: None,
            beat_here: false,
        };
        for (var, dir) in [
            ("TASK_DIR", &spool.layout.queue),
            ("TASK_DIR", &spool.layout.inflight),
            ("TASK_DIR", &spool.layout.rejected),
            ("TASK_DIR", &spool.layout.cancels),
            ("RESULT_DIR", &spool.layout.results),
            ("TRIGGER_DIR", &spool.layout.triggers),
            ("DLQ_DIR", &spool.layout.dlq),
            ("HEARTBEAT_DIR", &spool.layout.heartbeats),
        ] {
            durable::create_dir(dir)
                .map_err(|e| OpenError::of_io(format!("{var}: cannot create {}: {e}", dir.display()), &e))?;
        }
        if let Some(dir) = &paths.lock {
            durable::create_dir(dir).map_err(|e| {
                OpenError::of_io(format!("LOCK_DIR: cannot create {}: {e}", dir.display()), &e)
            })?;
        }
        let (var, path) = match &spool.lock_file {
            Some(file) => ("LOCK_DIR", file.clone()),
            None => ("TASK_DIR", spool.layout.queue.clone()),
        };
        let lock = lock_patiently(&path, spool.lock_file.is_some()).map_err(|e| match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => OpenError::Locked(format!(
                "another worker-watcher is already running for worker {worker:?} (it holds the lock on {})",
                path.display()
            )),
            _ => OpenError::of_io(format!("{var}: cannot lock {}: {e}", path.display()), &e),
        })?;
        let spool = FsSpool { lock, ..spool };
        let own_heartbeat = layout::record_name(worker);
        for (dir, owner) in [
            (&spool.layout.results, None),
            (&spool.layout.triggers, None),
            (&spool.layout.dlq, None),
            (&spool.layout.inflight, None),
            (&spool.layout.queue, Some("submit.")),
            (&spool.layout.heartbeats, Some(own_heartbeat.as_str())),
            (&spool.layout.queue, Some(WorkerFolders::ledger_name())),
        ] {
            durable::remove_stale_temps(dir, owner)
                .map_err(|e| OpenError::of_io(format!("cannot clean {}: {e}", dir.display()), &e))?;
        }
        Ok(spool)
    }

    #[cfg(test)]
    pub fn queue_dir(&self) -> &Path {
        &self.layout.queue
    }

    /// The kind of filesystem the queue is on, when inotify cannot see every write to it:
    /// those made by other hosts (NFS, CIFS/SMB, Ceph, 9p) or behind a FUSE daemon's back.
    pub fn remote_kind(&self) -> Option<&'static str> {
        let path = std::ffi::CString::new(self.layout.queue.as_os_str().as_bytes()).ok()?;
        // SAFETY: statfs writes into the zeroed struct we pass; the path is NUL-terminated.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        remote_kind(st.f_type as u64)
    }

    #[cfg(test)]
    pub fn inflight_path(&self, claim: &Claim) -> PathBuf {
        self.layout.inflight.join(os(&claim.key))
    }

    /// Re-creates a lost queue folder, locks and watches it again.
    fn rewatch(&mut self) -> io::Result<()> {
        for dir in [&self.layout.queue, &self.layout.inflight, &self.layout.rejected, &self.layout.cancels] {
            durable::create_dir(dir)?;
        }
        if self.lock_file.is_none() {
            if let Ok(f) = lock(&self.layout.queue, false) {
                self.lock = f;
            }
        }
        self.watch_queue()
    }

    /// Watches the queue for arrivals, and its parent for the queue's removal.
    fn watch_queue(&mut self) -> io::Result<()> {
        self.watch.add(&self.layout.queue, Watched::Queue)?;
        self.watch.add(&self.layout.cancels, Watched::Cancels)?;
        if let Some(parent) = self.layout.queue.parent() {
            self.watch.add_removals(parent, Watched::Parent)?;
        }
        self.watching = true;
        Ok(())
    }

    /// Gives the writer the next batch if it is free: what was staged, and the failed ops
    /// once their retry time has come (`force`: now).
    fn hand_over(&mut self, force: bool) {
        if self.writer.in_flight() {
            return;
        }
        let mut batch = Vec::new();
        if !self.failed.is_empty() && (force || self.retry_at.is_none_or(|t| Instant::now() >= t)) {
            self.retry_at = None;
            batch.append(&mut self.failed);
        }
        batch.append(&mut self.staged);
        if batch.is_empty() {
            return;
        }
        if let Err(back) = self.writer.send(batch) {
            // The writer thread is gone: keep everything for a retry (and the loop alive).
            self.failed = back;
            self.retry_at = Some(Instant::now() + RETRY_WRITES);
        }
    }

    /// Writes the staged heartbeat on the calling thread, when it is an idle worker's
    /// periodic one ([`beat_in_place`]), it is all there is to write and the writer is free:
    /// an idle worker's heartbeat then wakes no other thread. It is a signal, written
    /// atomically and not synced (worker-watcher-tasks(5)), so this is a few system calls that
    /// never wait for the device. When other ops are staged, or a batch is in flight (which
    /// may hold an older heartbeat, whose rename must not land after this one), it goes with
    /// the next batch instead.
    fn beat_alone(&mut self) -> Option<Done> {
        let retry_due = !self.failed.is_empty() && self.retry_at.is_none_or(|t| Instant::now() >= t);
        let alone = matches!(self.staged.as_slice(), [(Op::Heartbeat(_), _)]);
        if self.writer.in_flight() || retry_due || !alone || !self.beat_here {
            return None;
        }
        let Some((Op::Heartbeat(h), _)) = self.staged.pop() else { return None };
        let name = layout::record_name(&self.layout.worker);
        self.beats.add_unsynced(&self.layout.heartbeats, &name, to_bytes(&h), ());
        let error = self.beats.commit().pop().and_then(|(_, r)| r.err());
        self.recreated.extend(self.beats.take_recreated());
        Some(Done { kind: OpKind::Heartbeat, key: None, error })
    }

    /// Turns a written batch into outcomes; what failed and matters waits for a retry.
    fn absorb(&mut self, written: super::writer::Written) -> Vec<Done> {
        self.recreated.extend(written.recreated);
        let mut done = Vec::with_capacity(written.ops.len());
        for ((op, dlq_name), error) in written.ops {
            let kind = kind_of(&op);
            done.push(Done {
                kind,
                key: key_of(&op),
                error: error.as_ref().map(|e| io::Error::new(e.kind(), e.to_string())),
            });
            match error {
                Some(_) if !matches!(kind, OpKind::Receipt | OpKind::Heartbeat | OpKind::Ledger) => {
                    self.failed.push((op, dlq_name));
                    self.retry_at.get_or_insert(Instant::now() + RETRY_WRITES);
                }
                _ => {
                    if let Some(name) = dlq_name {
                        self.dlq_names.remove(&name);
                    }
                }
            }
        }
        done
    }

    /// The request to cancel a task that the file `name` of the cancels folder is: `<id>.json`
    /// (the id is the name's; `by` is read from the file, when it says).
    fn cancel_request(&self, name: &std::ffi::OsStr) -> Option<CancelRequest> {
        let task_id = layout::record_stem(name.to_str()?).filter(|id| is_valid_id(id))?;
        let by = read::read(&self.layout.cancels.join(name), MAX_REQUEST_BYTES)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("by").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        Some(CancelRequest { key: entry(name.to_os_string()), task_id: task_id.to_string(), by })
    }

    fn dlq_name(&self, base: &str) -> String {
        let taken =
            |n: &str| self.layout.dlq.join(n).symlink_metadata().is_ok() || self.dlq_names.contains(n);
        let plain = layout::record_name(base);
        if !taken(&plain) {
            return plain;
        }
        let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        (0..)
            .map(|n| match n {
                0 => layout::record_name(&format!("{base}.{ms}")),
                n => layout::record_name(&format!("{base}.{ms}.{n}")),
            })
            .find(|n| !taken(n))
            .unwrap_or(plain)
    }
}

fn kind_of(op: &Op) -> OpKind {
    match op {
        Op::Complete { .. } => OpKind::Complete,
        Op::DeadLetter { .. } => OpKind::DeadLetter,
        Op::SaveState { .. } => OpKind::SaveState,
        Op::Requeue { .. } => OpKind::Requeue,
        Op::Receipt(_) => OpKind::Receipt,
        Op::Heartbeat(_) => OpKind::Heartbeat,
        Op::Ledger(_) => OpKind::Ledger,
    }
}

fn key_of(op: &Op) -> Option<EntryId> {
    match op {
        Op::Complete { claim, .. }
        | Op::DeadLetter { claim, .. }
        | Op::SaveState { claim, .. }
        | Op::Requeue { claim, .. } => Some(claim.key.clone()),
        Op::Receipt(_) | Op::Heartbeat(_) | Op::Ledger(_) => None,
    }
}

fn rejected(why: Invalid, fallback_id: Option<String>) -> Rejected {
    Rejected { why, fallback_id, doc: None, preview: None, keep_original: true, unfinished: None }
}

fn unreadable(e: read::Error, fallback_id: Option<String>) -> Rejected {
    let why = match e {
        read::Error::NotRegular(kind) => Invalid::NotRegular(kind),
        read::Error::TooLarge { size, max } => Invalid::TooLarge { size, max },
        read::Error::Io(e) => Invalid::Unreadable(e.to_string()),
    };
    rejected(why, fallback_id)
}

/// The rejection of content that is not a valid task.
fn invalid(why: Invalid, fallback_id: String, bytes: &[u8], unfinished: Option<Unfinished>) -> Rejected {
    let doc = serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object);
    let preview = doc.is_none().then(|| {
        let cut = &bytes[..bytes.len().min(PREVIEW_BYTES)];
        String::from_utf8_lossy(cut).into_owned()
    });
    let keep_original = doc.is_none();
    Rejected { why, fallback_id: Some(fallback_id), doc, preview, keep_original, unfinished }
}

/// Whether a file that is not JSON may still be being written, and when it last changed.
/// When no process has it open for writing, its content is read again (its writer may have
/// finished it since the first read): what that gives is final.
fn unfinished(file: &File, max_bytes: u64, bytes: &mut Vec<u8>) -> Option<Unfinished> {
    let writers = read::writers(file);
    // After the read: a write since shows as a newer time.
    let meta = file.metadata().ok()?;
    if writers == Writers::Closed {
        if let Ok(again) = read::read_opened(file, &meta, max_bytes) {
            *bytes = again;
        }
        return None;
    }
    Some(Unfinished { modified: meta.modified().ok()?, writers })
}

impl Spool for FsSpool {
    fn register(&mut self, registry: &Registry, token: Token, writes: Token) -> io::Result<()> {
        self.writer.set_waker(Waker::new(registry, writes)?);
        if !self.watching {
            self.watch_queue()?;
        }
        registry.register(&mut SourceFd(&self.watch.as_raw_fd()), token, Interest::READABLE)
    }

    fn intake(&mut self, _registry: &Registry, _token: Token) -> io::Result<Intake> {
        let mut changes = Vec::new();
        self.watch.read(&mut changes)?;
        let mut intake = Intake::default();
        for change in changes {
            match change {
                // Its own move back (put_back); only a later arrival of it is news.
                Change::Arrived(Watched::Queue, name) if self.put_back.remove(&name) => {}
                Change::Arrived(Watched::Cancels, name) => {
                    intake.cancels.extend(self.cancel_request(&name));
                }
                Change::Arrived(Watched::Queue, name) => match classify(&name) {
                    NameKind::Task => intake.arrivals.push(entry(name)),
                    NameKind::Other => intake.ignored.push(Ignored { id: entry(name), why: NOT_A_TASK }),
                    NameKind::Temp => {}
                },
                // A regular file is taken when it is closed after writing. What is never
                // written here is taken at its creation: a hard link (complete already), or a
                // symlink, FIFO, device or folder made in place (rejected unopened).
                // Named first: a producer's temp file (created before every rename into the
                // queue) costs no stat.
                Change::Created(Watched::Queue, name) if classify(&name) == NameKind::Task => {
                    use std::os::unix::fs::MetadataExt;
                    let whole = self
                        .layout
                        .queue
                        .join(&name)
                        .symlink_metadata()
                        .is_ok_and(|m| !m.file_type().is_file() || m.nlink() > 1);
                    if whole {
                        intake.arrivals.push(entry(name));
                    }
                }
                Change::Overflow => {
                    // Lost events may have been those of moves back: none is to be skipped.
                    self.put_back.clear();
                    intake.rescan = true;
                }
                Change::Lost(_) => {
                    self.watching = false;
                    self.put_back.clear();
                    intake.rescan = true;
                }
                Change::Removed(Watched::Parent, name)
                    if Some(name.as_os_str()) == self.layout.queue.file_name() =>
                {
                    self.watching = false;
                    self.put_back.clear();
                    intake.rescan = true;
                }
                Change::Arrived(..) | Change::Created(..) | Change::Removed(..) => {}
            }
        }
        Ok(intake)
    }

    fn scan(&mut self) -> io::Result<Scan> {
        if !self.watching {
            self.rewatch()?;
        }
        let mut entries = Vec::new();
        let mut ignored = Vec::new();
        for dirent in fs::read_dir(&self.layout.queue)? {
            let dirent = dirent?;
            let name = dirent.file_name();
            match classify(&name) {
                NameKind::Task => {}
                NameKind::Temp => continue,
                NameKind::Other => {
                    ignored.push(Ignored { id: entry(name), why: NOT_A_TASK });
                    continue;
                }
            }
            match dirent.metadata() {
                Ok(m) => entries
                    .push(Entry { arrived: m.modified().unwrap_or(SystemTime::UNIX_EPOCH), id: entry(name) }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        entries.sort_by(|a, b| a.arrived.cmp(&b.arrived).then_with(|| a.id.cmp(&b.id)));
        let mut cancels = Vec::new();
        for dirent in fs::read_dir(&self.layout.cancels)? {
            cancels.extend(self.cancel_request(&dirent?.file_name()));
        }
        Ok(Scan { entries, ignored, cancels })
    }

    fn leftovers(&mut self) -> io::Result<Vec<Claim>> {
        let mut found = Vec::new();
        for dirent in fs::read_dir(&self.layout.inflight)? {
            let dirent = dirent?;
            let name = dirent.file_name();
            if name.as_bytes().starts_with(durable::TEMP_PREFIX.as_bytes()) {
                continue;
            }
            let mtime = dirent.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            let file = Some(self.layout.inflight.join(&name));
            found.push((mtime, Claim { source: entry(name.clone()), key: entry(name), file }));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
        Ok(found.into_iter().map(|(_, c)| c).collect())
    }

    fn claim(&mut self, wanted: &EntryId) -> io::Result<Option<Claim>> {
        let name = os(wanted);
        let from = self.layout.queue.join(name);
        let mut key = name.to_os_string();
        for n in 1..=1000u64 {
            let to = self.layout.inflight.join(&key);
            match durable::rename_noreplace(&from, &to) {
                Ok(()) => return Ok(Some(Claim { key: entry(key), source: wanted.clone(), file: Some(to) })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                // A task of the same file name is still in flight: claim under another name;
                // its id decides whether it is a duplicate.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.seq += 1;
                    key = alternative(name, self.seq.max(n));
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name in .inflight"))
    }

    #[allow(clippy::result_large_err)]
    fn load(&mut self, claim: &Claim, max_bytes: u64, worker: &str) -> Result<Loaded, Rejected> {
        let Ok(name) = std::str::from_utf8(claim.source.as_bytes()) else {
            return Err(rejected(Invalid::NameNotUtf8(claim.source_lossy()), None));
        };
        let stem = layout::stem_of(name);
        let path = self.layout.inflight.join(os(&claim.key));
        let (file, meta) = read::open(&path).map_err(|e| unreadable(e, Some(stem.into())))?;
        let mut bytes =
            read::read_opened(&file, &meta, max_bytes).map_err(|e| unreadable(e, Some(stem.into())))?;
        let queued_at = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let mut parsed = Task::parse(&bytes, stem, worker);
        let mut unfinished_file = None;
        if let Err(Invalid::NotJson(_)) = parsed {
            unfinished_file = unfinished(&file, max_bytes, &mut bytes);
            if unfinished_file.is_none() {
                parsed = Task::parse(&bytes, stem, worker);
            }
        }
        match parsed {
            Ok(task) => Ok(Loaded { task, queued_at }),
            Err(why) => Err(invalid(why, stem.into(), &bytes, unfinished_file)),
        }
    }

    fn result_exists(&self, task_id: &str) -> bool {
        is_valid_id(task_id) && self.layout.result(task_id).symlink_metadata().is_ok()
    }

    fn result_is_invalid(&self, task_id: &str) -> bool {
        if !is_valid_id(task_id) {
            return false;
        }
        let path = self.layout.result(task_id);
        let Ok((file, _)) = read::open(&path) else { return false };
        let reader = io::BufReader::new(io::Read::take(file, MAX_RECORD_BYTES));
        serde_json::from_reader::<_, ResultHead>(reader).is_ok_and(|r| r.is_invalid())
    }

    fn set_aside_result(&mut self, task_id: &str) -> io::Result<()> {
        let dir = layout::aside_dir(&self.layout.results);
        durable::create_dir(&dir)?;
        let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let from = self.layout.result(task_id);
        durable::rename_noreplace(&from, &dir.join(layout::aside_name(task_id, ms)))
    }

    fn requeue(&mut self, claim: &Claim) -> io::Result<()> {
        self.layout.requeue(claim).map(drop)
    }

    fn put_back(&mut self, claim: &Claim) -> io::Result<EntryId> {
        let name = self.layout.requeue(claim)?;
        self.put_back.insert(name.clone());
        Ok(entry(name))
    }

    fn discard(&mut self, claim: &Claim) -> io::Result<()> {
        remove_if_present(&self.layout.inflight.join(os(&claim.key)))
    }

    fn withdraw(&mut self, task_id: &str) -> io::Result<Option<Claim>> {
        if !is_valid_id(task_id) {
            return Ok(None);
        }
        self.claim(&EntryId::from(layout::record_name(task_id)))
    }

    fn drop_request(&mut self, request: &CancelRequest) -> io::Result<()> {
        remove_if_present(&self.layout.cancels.join(os(&request.key)))
    }

    fn submit(&mut self, tasks: Vec<(String, Vec<u8>)>) -> Vec<io::Result<EntryId>> {
        let how = durable::Publish {
            temp_prefix: SUBMIT_TEMP_PREFIX,
            alternative: Some(alternative),
            owner: (None, None),
        };
        let files =
            tasks.into_iter().map(|(id, bytes)| (OsString::from(format!("{id}.json")), bytes)).collect();
        durable::publish(&self.layout.queue, files, &how).into_iter().map(|r| r.map(entry)).collect()
    }

    fn stage(&mut self, mut op: Op) {
        let mut dlq_name = None;
        if let Op::DeadLetter { record, keep_original, .. } = &mut op {
            let base = match &record.task_id {
                Some(id) => id.clone(),
                None => format!("invalid-{}", sanitize(&record.source_file)),
            };
            let name = self.dlq_name(&base);
            if *keep_original {
                record.original_file = Some(self.layout.original(&name).display().to_string());
            }
            self.dlq_names.insert(name.clone());
            dlq_name = Some(name);
        }
        if let Op::Ledger(_) = op {
            self.staged.retain(|(o, _)| !matches!(o, Op::Ledger(_)));
        }
        if let Op::Heartbeat(h) = &op {
            // Only the newest heartbeat matters.
            self.staged.retain(|(o, _)| !matches!(o, Op::Heartbeat(_)));
            self.beat_here = beat_in_place(self.beat_state.as_deref(), h);
            self.beat_state = Some(h.status.clone());
        }
        self.staged.push((op, dlq_name));
    }

    fn commit(&mut self) -> Vec<Done> {
        let mut done = match self.writer.finished(false) {
            Some(written) => self.absorb(written),
            None => Vec::new(),
        };
        done.extend(self.beat_alone());
        self.hand_over(false);
        // A batch that was written at once (an empty one) leaves nothing in flight.
        if let Some(written) = self.writer.finished(false) {
            done.extend(self.absorb(written));
        }
        done
    }

    fn commit_wait(&mut self) -> Vec<Done> {
        let mut done = Vec::new();
        if let Some(written) = self.writer.finished(true) {
            done.extend(self.absorb(written));
        }
        done.extend(self.beat_alone());
        self.hand_over(true);
        if let Some(written) = self.writer.finished(true) {
            done.extend(self.absorb(written));
        }
        done
    }

    fn ledger(&self) -> io::Result<Option<Vec<u8>>> {
        let path = self.layout.ledger();
        match read::read(&path, MAX_LEDGER_BYTES) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_missing() => Ok(None),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        }
    }

    fn has_pending(&self) -> bool {
        !self.failed.is_empty()
    }

    fn busy(&self) -> bool {
        self.writer.in_flight() || !self.staged.is_empty() || !self.failed.is_empty()
    }

    fn notifications_unreliable(&self) -> Option<&'static str> {
        self.remote_kind()
    }

    fn recreated(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.recreated)
    }
}

/// The name of a filesystem magic number (statfs(2)'s `f_type`) on which inotify misses writes.
pub fn remote_kind(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0x6969 => "nfs",
        0x517b => "smb",
        0xff53_4d42 => "cifs",
        0xfe53_4d42 => "smb2",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x00c3_6400 => "ceph",
        0x5346_414f => "afs",
        _ => return None,
    })
}

/// A lossy, safe file-name stem of at most 64 characters.
fn sanitize(name: &str) -> String {
    let s: String = layout::stem_of(name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(64)
        .collect();
    s.trim_start_matches('.').to_string()
}

#[cfg(test)]
mod tests;

/// Whether heartbeat `h`, staged after one that said `last`, is written by the loop itself:
/// only a worker's periodic heartbeat with nothing running and nothing changed. A change of
/// state, and every heartbeat while agents run, comes with tasks starting and ending, and a
/// file written on the loop holds up the claim and the spawn of a task that arrives meanwhile
/// (a create and a rename over the last one, 0.1–1 ms on a journalled ext4 that is
/// committing): those go to the writer thread.
fn beat_in_place(last: Option<&str>, h: &Heartbeat) -> bool {
    h.active_tasks == 0 && last == Some(h.status.as_str())
}
