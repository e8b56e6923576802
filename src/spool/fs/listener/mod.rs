//! The listener's spool in folders: results found in `results/<worker>/` by a cursor over
//! their modification times ([`cursor`]) and a log of what was taken ([`taken`]), heartbeats
//! read from `heartbeats/`, events written to `triggers/orchestrator/`, and the listener's
//! state in `ROOT/listener/state.json`, with the cursors and the logs' marks in it, so that
//! one rename commits them all. inotify says what changed ([`watch`]); the listing, taking and
//! sealing of result folders is [`results`].
//!
//! One listener per spool: an flock on `ROOT/listener/`, held for the listener's life.

mod cursor;
mod results;
mod taken;
mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::format::records::MAX_RECORD_BYTES;
use crate::log::ids;
use crate::spool::error::{Error, OpenError};
use crate::spool::layout::Layout;
use crate::spool::listener::{
    Backlog, CommitError, Delivered, ListenerSpool, Loudness, Note, Notices, Outgoing, Saved,
    StoredHeartbeat, ONE_HOST,
};
use crate::spool::read;
use crate::sys::durable::{self, Batch};
use crate::sys::inotify::DirWatch;
use cursor::{Cursor, Key};
use taken::{Mark, Taken};
use watch::Folder;

/// How long to wait before trying again a listing or a watch that failed.
const RETRY_IO: Duration = Duration::from_secs(1);

/// What the state file holds of one worker for this backend: its cursor, and the mark of its
/// log of results taken.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Position {
    #[serde(default)]
    cursor: Cursor,
    #[serde(default)]
    taken: Mark,
}

#[derive(Debug, Default, Deserialize)]
struct Positions {
    #[serde(default)]
    workers: BTreeMap<String, Position>,
}

/// One worker followed.
#[derive(Debug, Default)]
struct Followed {
    /// Named in WORKERS: its result folder is made if missing.
    named: bool,
    watched: bool,
    /// Results not taken yet, in key order.
    pending: BTreeSet<Key>,
    /// When to try to seal its result folder.
    seal_at: Option<Instant>,
    /// Its result folder is queued for a listing.
    scan_due: bool,
    cursor: Cursor,
    taken: Taken,
}

/// The listener's spool under one root.
pub struct FsListener {
    layout: Layout,
    watch: DirWatch<Folder>,
    /// The lock on the state folder: one listener per spool.
    lock: File,
    discover: bool,
    followed: BTreeMap<String, Followed>,
    /// Positions read from the state of workers not followed (yet): kept, and written back.
    saved: BTreeMap<String, Position>,
    /// The state's positions could not be read: why (said by `start`).
    damaged: Option<String>,
    /// Result folders to list, a few each turn.
    to_scan: VecDeque<String>,
    /// Top folders whose watch was lost and could not be set again yet.
    lost_roots: Vec<Folder>,
    /// A listing or a watch failed: everything is looked at again at this time.
    retry_at: Option<Instant>,
    rescan_due: bool,
    dirty: bool,
    notices: Notices,
    notes: Vec<Note>,
}

/// Takes the lock on the state folder `dir`: one listener per spool (and per host, on an
/// engine).
pub(crate) fn lock(dir: &Path) -> Result<File, OpenError> {
    // O_DIRECTORY: something else at that name is refused, never waited on (a FIFO).
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| OpenError::of_io(format!("cannot open {}: {e}", dir.display()), &e))?;
    if crate::sys::flock::try_exclusive(&lock).is_err() {
        return Err(OpenError::Locked(format!(
            "another orchestrator-listener is already running on this spool (it holds the lock on {})",
            dir.display()
        )));
    }
    Ok(lock)
}

fn note(
    loudness: Loudness,
    message: &'static str,
    fields: &[(&'static str, &dyn std::fmt::Display)],
) -> Note {
    Note { loudness, message, fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect() }
}

impl FsListener {
    /// Creates the state and events folders and takes the lock (one listener per spool).
    pub fn open(layout: &Layout) -> Result<FsListener, OpenError> {
        let dir = layout.listener();
        for (d, what) in [(&dir, "WATCHER_ROOT (the listener's state)"), (&layout.events(), "TRIGGER_DIR")] {
            durable::create_dir(d)
                .map_err(|e| OpenError::of_io(format!("{what}: cannot create {}: {e}", d.display()), &e))?;
        }
        let lock = lock(&dir)?;
        // Temp files of a listener that died mid-write: only it writes these folders.
        let _ = durable::remove_stale_temps(&dir, None);
        let _ = durable::remove_stale_temps(&layout.events(), None);
        let watch = DirWatch::new().map_err(|e| OpenError::of_io(format!("inotify: {e}"), &e))?;
        Ok(FsListener {
            layout: layout.clone(),
            watch,
            lock,
            discover: false,
            followed: BTreeMap::new(),
            saved: BTreeMap::new(),
            damaged: None,
            to_scan: VecDeque::new(),
            lost_roots: Vec::new(),
            retry_at: None,
            rescan_due: false,
            dirty: false,
            notices: Notices::default(),
            notes: Vec::new(),
        })
    }

    /// A listing or a watch failed: everything is looked at again in a second.
    fn retry_later(&mut self) {
        self.retry_at.get_or_insert(Instant::now() + RETRY_IO);
    }

    /// Before the state is written: a state folder removed under the listener is made again,
    /// the lock taken on the new one, and the logs of results taken, gone with it, written
    /// again whole.
    fn state_folder_back(&mut self) -> Result<(), CommitError> {
        let dir = self.layout.listener();
        if dir.symlink_metadata().is_ok() || durable::recreate_dir(&dir).is_err() {
            // There, or not to be made: the write that follows says why.
            return Ok(());
        }
        self.recreated(vec![dir.clone()]);
        self.followed.values_mut().for_each(|f| f.taken.lost());
        match lock(&dir) {
            Ok(file) => {
                self.lock = file;
                Ok(())
            }
            Err(e) => Err(CommitError::Superseded(format!("cannot lock the re-created state folder: {e}"))),
        }
    }

    /// Reports folders found missing and made again.
    fn recreated(&mut self, dirs: Vec<std::path::PathBuf>) {
        for dir in dirs {
            self.notes.push(note(
                Loudness::Warn,
                "a folder of the spool was missing (removed under the listener?); re-created it",
                &[("MESSAGE_ID", &ids::FOLDER_RECREATED), ("FOLDER", &dir.display())],
            ));
        }
    }

    /// Appends the results taken since the last commit to their logs; the marks of the logs
    /// go into the state written next, which commits them.
    fn flush_taken(&mut self) -> io::Result<()> {
        for (worker, f) in self.followed.iter_mut().filter(|(_, f)| f.taken.is_dirty()) {
            f.taken.flush(&self.layout, worker)?;
        }
        Ok(())
    }

    /// `state` with every worker's position in it.
    fn with_positions(&self, mut state: Value) -> Value {
        if !state.is_object() {
            state = Value::Object(serde_json::Map::new());
        }
        let workers = state
            .as_object_mut()
            .map(|o| o.entry("workers").or_insert_with(|| Value::Object(serde_json::Map::new())));
        let Some(Value::Object(workers)) = workers else { return state };
        let followed = self
            .followed
            .iter()
            .map(|(w, f)| (w, Position { cursor: f.cursor.clone(), taken: f.taken.mark() }));
        for (worker, position) in followed.chain(self.saved.iter().map(|(w, p)| (w, p.clone()))) {
            let entry =
                workers.entry(worker.clone()).or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let (Value::Object(o), Ok(Value::Object(p))) = (entry, serde_json::to_value(position)) {
                o.extend(p);
            }
        }
        state
    }
}

impl ListenerSpool for FsListener {
    fn load(&mut self) -> Result<Option<Saved>, OpenError> {
        let path = self.layout.listener_state();
        let bytes = match read::read(&path, MAX_RECORD_BYTES) {
            Ok(b) => b,
            Err(e) if e.is_missing() => return Ok(None),
            Err(e) => {
                let message = format!("cannot read {}: {e}", path.display());
                return Err(match e {
                    read::Error::Io(io) => OpenError::of_io(message, &io),
                    // Something else than a file is there: an operator must remove it.
                    _ => OpenError::Config(message),
                });
            }
        };
        match serde_json::from_slice::<Positions>(&bytes) {
            Ok(p) => self.saved = p.workers,
            Err(e) => self.damaged = Some(format!("{} is damaged ({e})", path.display())),
        }
        Ok(Some(Saved { at: path.display().to_string(), bytes }))
    }

    fn start(&mut self, discover: bool) -> Result<(), OpenError> {
        if let Some(why) = self.damaged.take() {
            return Err(OpenError::Config(format!(
                "{why}; move it away to start again from the folders (results are counted again, recent ones announced again)"
            )));
        }
        self.discover = discover;
        self.watch_roots()
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut SourceFd(&self.watch.as_raw_fd()), token, Interest::READABLE)
    }

    fn workers(&mut self) -> Vec<String> {
        self.found()
    }

    fn follow(&mut self, worker: &str, named: bool) {
        self.follow_worker(worker, named);
    }

    fn rescan(&mut self) {
        self.rescan_all();
    }

    fn prepare(&mut self) {
        self.skip_sealed();
    }

    fn drain(&mut self) -> Notices {
        self.read_watch();
        if std::mem::take(&mut self.rescan_due) {
            self.notices.rescan = true;
        }
        std::mem::take(&mut self.notices)
    }

    fn results(&mut self, max: usize, backfill: Duration) -> Vec<Delivered> {
        self.scan_some(results::SCAN_BUDGET, backfill);
        self.take(max)
    }

    fn backlog(&self) -> Backlog {
        Backlog {
            results: self.followed.values().map(|f| f.pending.len()).sum(),
            listings: self.to_scan.len(),
        }
    }

    /// The one heartbeat file of `worker`, if there is one: the folders are one host's.
    fn heartbeats(&mut self, worker: &str) -> Vec<(String, StoredHeartbeat)> {
        let path = self.layout.heartbeat(worker);
        let beat = match read::read(&path, crate::format::records::MAX_HEARTBEAT_BYTES) {
            Ok(b) => StoredHeartbeat::Found(b),
            Err(e) if e.is_missing() => return Vec::new(),
            Err(e) => StoredHeartbeat::Unreadable(e.to_string()),
        };
        vec![(ONE_HOST.to_string(), beat)]
    }

    fn write_events(&mut self, events: &[Outgoing]) -> Vec<Result<(), Error>> {
        let dir = self.layout.events();
        // The events folder removed under the listener is made again.
        let mut batch = Batch::recreating();
        for (i, e) in events.iter().enumerate() {
            batch.add(&dir, &crate::spool::layout::record_name(&e.id), e.json.clone(), i);
        }
        let mut out: Vec<Result<(), Error>> = events.iter().map(|_| Ok(())).collect();
        for (i, outcome) in batch.commit() {
            if let (Err(e), Some(slot)) = (outcome, out.get_mut(i)) {
                *slot = Err(Error::new("cannot write events in", dir.display(), e));
            }
        }
        let recreated = batch.take_recreated();
        self.recreated(recreated);
        out
    }

    fn event_at(&self, id: &str) -> String {
        self.layout.event(id).display().to_string()
    }

    fn state_at(&self) -> String {
        self.layout.listener().display().to_string()
    }

    fn dirty(&self) -> bool {
        self.dirty || self.followed.values().any(|f| f.taken.is_dirty())
    }

    fn commit(&mut self, state: Value) -> Result<(), CommitError> {
        self.state_folder_back()?;
        let dir = self.layout.listener();
        self.flush_taken().map_err(|e| {
            CommitError::Failed(Error::new("cannot write the log of results taken in", dir.display(), e))
        })?;
        let mut bytes = serde_json::to_vec(&self.with_positions(state)).unwrap_or_default();
        bytes.push(b'\n');
        let mut batch = Batch::new();
        let path = self.layout.listener_state();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        batch.add(&dir, &name, bytes, ());
        match batch.commit().pop().map_or(Ok(()), |(_, r)| r) {
            Ok(()) => {
                self.dirty = false;
                self.followed.values_mut().for_each(|f| f.taken.committed());
                Ok(())
            }
            Err(e) => Err(CommitError::Failed(Error::new("cannot write", path.display(), e))),
        }
    }

    fn next_deadline(&self, settle: bool) -> Option<Instant> {
        let seals = self
            .followed
            .values()
            .filter(|f| settle && f.watched && !f.scan_due && f.pending.is_empty())
            .filter_map(|f| f.seal_at);
        // Word read while sealing (inotify is read then too) is for the next drain, at once.
        let heard = !self.notices.heartbeats.is_empty() || !self.notices.appeared.is_empty();
        let now = (self.rescan_due || heard).then(Instant::now);
        seals.chain(self.retry_at).chain(now).min()
    }

    fn tick(&mut self, now: Instant, settle: bool) {
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            self.rescan_due = true;
        }
        if settle {
            self.seal_quiet(now);
        }
    }

    fn notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }
}

#[cfg(test)]
mod tests;
