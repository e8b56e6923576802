//! The folder spool's writer: one thread that makes staged ops durable (temp file, sync,
//! rename, folder sync, then releasing the claimed file), so the event loop never waits for the
//! disk. The loop hands it a batch and goes on claiming, spawning and reaping; what it stages
//! meanwhile forms the next batch, so batches grow with the disk's latency (group commit).
//! When a batch is done the writer wakes the loop through a mio `Waker`.
//!
//! It owns no state but the paths: every decision (what to retry, what to log) stays in the
//! loop, which receives each op back with its outcome.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, OnceLock};

use mio::Waker;

use super::Op;
use crate::format::records::to_bytes;
use crate::spool::layout::{record_name, WorkerFolders};
use crate::spool::{Claim, EntryId};
use crate::sys::durable::{self, Batch};

/// An op and the dead-letter file name chosen for it at staging.
pub(super) type Staged = (Op, Option<String>);

/// A batch written: each op with its error, if any, and the folders that were missing and
/// made again.
pub(super) struct Written {
    pub(super) ops: Vec<(Staged, Option<io::Error>)>,
    pub(super) recreated: Vec<PathBuf>,
}

/// An id of the folder spool as the file name it is.
pub(super) fn os(id: &EntryId) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(id.as_bytes())
}

/// A file name as an id of the folder spool.
pub(super) fn entry(name: std::ffi::OsString) -> EntryId {
    use std::os::unix::ffi::OsStringExt;
    EntryId::new(name.into_vec())
}

/// `<stem>~<n>.json`: a free name when the plain one is taken.
pub(super) fn alternative(name: &std::ffi::OsStr, n: u64) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let b = name.as_bytes();
    let mut v = b.strip_suffix(b".json").unwrap_or(b).to_vec();
    v.extend_from_slice(format!("~{n}.json").as_bytes());
    std::ffi::OsString::from_vec(v)
}

/// Whether nothing is at `path`.
fn gone(path: &Path) -> bool {
    path.symlink_metadata().is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
}

pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl WorkerFolders {
    /// Puts a claimed task back in the queue under its own name, or a free one; returns
    /// the name. A queue folder removed meanwhile is made again.
    pub(super) fn requeue(&self, claim: &Claim) -> io::Result<std::ffi::OsString> {
        let from = self.inflight.join(os(&claim.key));
        let mut name = os(&claim.source).to_os_string();
        for n in 1..=1000u64 {
            match durable::rename_noreplace(&from, &self.queue.join(&name)) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    name = alternative(os(&claim.source), n)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && gone(&self.queue) && !gone(&from) => {
                    durable::recreate_dir(&self.queue)?
                }
                other => return other.map(|()| name),
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name in the queue"))
    }

    /// Adds the files of one op to `batch`, tagged `i`.
    fn add(&self, batch: &mut Batch<usize>, i: usize, op: &Op, dlq_name: Option<&str>) {
        let json = |id: &str| record_name(id);
        match op {
            Op::Complete { result, .. } => {
                batch.add(&self.results, &json(&result.task_id), to_bytes(result), i)
            }
            Op::DeadLetter { record, result, .. } => {
                batch.add(&self.dlq, dlq_name.unwrap_or("unnamed.json"), to_bytes(record), i);
                if let Some(r) = result {
                    batch.add(&self.results, &json(&r.task_id), to_bytes(r), i);
                }
            }
            Op::SaveState { claim, task, queued_at } | Op::Requeue { claim, task, queued_at } => {
                batch.add_with_mtime(&self.inflight, &claim.key.lossy(), task.to_bytes(), Some(*queued_at), i)
            }
            // Signals, atomic but not synced (worker-watcher-tasks(5)). The claim a receipt
            // records is not synced either: after a power failure the task is simply claimed
            // again. A heartbeat lost with the power is replaced by the next one.
            Op::Receipt(r) => batch.add_unsynced(&self.triggers, &json(&r.task_id), to_bytes(r), i),
            Op::Heartbeat(h) => batch.add_unsynced(&self.heartbeats, &json(&self.worker), to_bytes(h), i),
            Op::Ledger(bytes) => batch.add(&self.queue, WorkerFolders::ledger_name(), bytes.clone(), i),
        }
    }

    /// What follows a durable op: releasing or moving the claimed file.
    fn after(&self, op: &Op, dlq_name: Option<&str>) -> io::Result<()> {
        match op {
            Op::Complete { claim, .. } => remove_if_present(&self.inflight.join(os(&claim.key))),
            Op::DeadLetter { claim, keep_original: true, .. } => {
                let name = dlq_name.unwrap_or("unnamed.json");
                let (from, to) = (self.inflight.join(os(&claim.key)), self.original(name));
                match fs::rename(&from, &to) {
                    // Removed with its folder (`rm -rf` of the spool): nothing is left to keep.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && gone(&from) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        durable::recreate_dir(&self.rejected).and_then(|()| fs::rename(&from, &to))
                    }
                    other => other,
                }
            }
            Op::DeadLetter { claim, .. } => remove_if_present(&self.inflight.join(os(&claim.key))),
            Op::Requeue { claim, .. } => self.requeue(claim).map(drop),
            Op::SaveState { .. } | Op::Receipt(_) | Op::Heartbeat(_) | Op::Ledger(_) => Ok(()),
        }
    }

    /// Writes one batch: every file written and synced, renamed, each folder synced once, then
    /// the follow-ups of the ops whose files are all durable.
    fn write(&self, ops: Vec<Staged>) -> Written {
        // A folder of the worker's removed under it is made again at its next write.
        let mut batch = Batch::recreating();
        for (i, (op, dlq_name)) in ops.iter().enumerate() {
            self.add(&mut batch, i, op, dlq_name.as_deref());
        }
        let mut errors: Vec<Option<io::Error>> = ops.iter().map(|_| None).collect();
        for (i, outcome) in batch.commit() {
            if let (Err(e), Some(slot)) = (outcome, errors.get_mut(i)) {
                slot.get_or_insert(e);
            }
        }
        let ops = ops
            .into_iter()
            .zip(errors)
            .map(|((op, dlq_name), error)| {
                let error = match error {
                    None => self.after(&op, dlq_name.as_deref()).err(),
                    some => some,
                };
                ((op, dlq_name), error)
            })
            .collect();
        Written { ops, recreated: batch.take_recreated() }
    }
}

/// The loop's end of the writer thread.
pub(super) struct Writer {
    jobs: Sender<Vec<Staged>>,
    done: Receiver<Written>,
    waker: Arc<OnceLock<Waker>>,
    in_flight: bool,
}

impl Writer {
    pub(super) fn spawn(layout: WorkerFolders) -> io::Result<Writer> {
        let (jobs, jobs_rx) = mpsc::channel::<Vec<Staged>>();
        let (done_tx, done) = mpsc::channel::<Written>();
        let waker = Arc::new(OnceLock::<Waker>::new());
        let wake = waker.clone();
        std::thread::Builder::new().name("spool-writer".into()).spawn(move || {
            // Agents' SIGCHLDs go to the loop, which reaps them, instead of waking this thread.
            crate::sys::syncs::block_signals();
            for ops in jobs_rx {
                if done_tx.send(layout.write(ops)).is_err() {
                    break;
                }
                if let Some(w) = wake.get() {
                    let _ = w.wake();
                }
            }
        })?;
        Ok(Writer { jobs, done, waker, in_flight: false })
    }

    /// The loop's waker, woken when a batch is written.
    pub(super) fn set_waker(&self, waker: Waker) {
        let _ = self.waker.set(waker);
    }

    pub(super) fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Hands a batch to the thread. Only one is in flight at a time.
    pub(super) fn send(&mut self, ops: Vec<Staged>) -> Result<(), Vec<Staged>> {
        match self.jobs.send(ops) {
            Ok(()) => {
                self.in_flight = true;
                Ok(())
            }
            Err(mpsc::SendError(ops)) => Err(ops),
        }
    }

    /// The batch in flight, if it is written; `wait`: block until it is.
    pub(super) fn finished(&mut self, wait: bool) -> Option<Written> {
        if !self.in_flight {
            return None;
        }
        let got = if wait {
            self.done.recv().ok()
        } else {
            match self.done.try_recv() {
                Ok(w) => Some(w),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => None,
            }
        };
        self.in_flight = false;
        got
    }
}
