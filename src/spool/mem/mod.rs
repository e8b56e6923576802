//! A spool in memory, for tests: what the listener ([`MemListener`]) and watcherctl
//! ([`MemControl`]) see (one [`Memory`]), the worker's own backend ([`MemSpool`]), and the workers' side ([`Memory`]'s methods write results,
//! heartbeats and dead letters, and claim tasks, as a worker would).
//!
//! It keeps the promises of the interfaces without a disk or an engine: results form a stream
//! (each one an entry, in the order written), the listener's position and state are committed
//! together, and whoever waits (a result, an event) is woken by a condition variable, the
//! listener's loop by a mio `Waker`. Nothing here fails; tests of failures use the folders.

mod control;
mod listener;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use mio::Waker;

pub use control::MemControl;
pub use listener::MemListener;
pub use worker::MemSpool;

/// A result as the stream holds it.
#[derive(Clone, Debug)]
struct Entry {
    worker: String,
    id: String,
    written_ns: i64,
    bytes: Vec<u8>,
}

/// What the listener committed: per worker, the last entry taken and the time before which
/// results found at first sight are only counted; and its own state.
#[derive(Clone, Debug, Default)]
struct Committed {
    positions: BTreeMap<String, Position>,
    state: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Position {
    /// Entries up to this index (excluded) are taken.
    next: usize,
    quiet_before_ns: Option<i64>,
}

/// A change the listener hears of.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Change {
    Heartbeat(String),
    /// A worker made a queue, or wrote a result folder's first result.
    Appeared(String),
}

#[derive(Debug, Default)]
struct Store {
    /// Per worker, the queue (present: the worker has one) and the tasks claimed.
    queues: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    inflight: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Per worker, the current result of each task.
    results: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Results set aside (retried, corrected).
    aside: Vec<(String, String, Vec<u8>)>,
    /// Every result written, in order: the listener's stream.
    stream: Vec<Entry>,
    heartbeats: BTreeMap<String, Vec<u8>>,
    /// Per worker, dead letters by name, and the originals some keep.
    dead_letters: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// `None`: kept, and removed since.
    originals: BTreeMap<(String, String), Option<Vec<u8>>>,
    retired: Vec<(String, String, Vec<u8>)>,
    /// Requests to cancel a task, by worker and task id: who asked.
    cancels: BTreeMap<(String, String), String>,
    /// Claim receipts by worker and task id.
    receipts: BTreeMap<(String, String), Vec<u8>>,
    /// The listener's events by id, with when they were written.
    events: BTreeMap<String, (SystemTime, Vec<u8>)>,
    committed: Committed,
    changes: Vec<Change>,
    /// Bumped at every change, for waiters.
    generation: u64,
    wakers: Vec<Arc<Waker>>,
}

#[derive(Debug, Default)]
struct Shared {
    store: Mutex<Store>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A test that panicked with the lock held poisons it; the store is still whole.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a change under the lock, then wakes every waiter and the listener's loop.
    fn change<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut store = self.lock();
        let out = f(&mut store);
        store.generation += 1;
        for w in &store.wakers {
            let _ = w.wake();
        }
        drop(store);
        self.changed.notify_all();
        out
    }
}

/// The nanoseconds since the epoch of `t`.
fn ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

/// A spool in memory. Clones share it.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    shared: Arc<Shared>,
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    /// The listener's side, from what it last committed (a new one is a restart).
    pub fn listener(&self) -> MemListener {
        MemListener::new(self.shared.clone())
    }

    /// watcherctl's side.
    pub fn control(&self) -> MemControl {
        MemControl::new(self.shared.clone())
    }

    /// A worker writes the result of task `id`, at `written`.
    pub fn write_result(&self, worker: &str, id: &str, bytes: &[u8], written: SystemTime) {
        self.shared.change(|s| {
            if !s.results.contains_key(worker) && !s.queues.contains_key(worker) {
                s.changes.push(Change::Appeared(worker.to_string()));
            }
            s.results.entry(worker.to_string()).or_default().insert(id.to_string(), bytes.to_vec());
            let entry = Entry {
                worker: worker.into(),
                id: id.into(),
                written_ns: ns(written),
                bytes: bytes.to_vec(),
            };
            s.stream.push(entry);
        });
    }

    /// A worker writes its heartbeat.
    pub fn write_heartbeat(&self, worker: &str, bytes: &[u8]) {
        self.shared.change(|s| {
            s.heartbeats.insert(worker.to_string(), bytes.to_vec());
            s.changes.push(Change::Heartbeat(worker.to_string()));
        });
    }

    /// A worker makes its queue.
    pub fn make_queue(&self, worker: &str) {
        self.shared.change(|s| {
            if !s.queues.contains_key(worker) {
                s.queues.insert(worker.to_string(), BTreeMap::new());
                s.changes.push(Change::Appeared(worker.to_string()));
            }
        });
    }

    /// A worker claims the queued task `id`; returns it.
    pub fn claim(&self, worker: &str, id: &str) -> Option<Vec<u8>> {
        self.shared.change(|s| {
            let task = s.queues.get_mut(worker)?.remove(id)?;
            s.inflight.entry(worker.to_string()).or_default().insert(id.to_string(), task.clone());
            Some(task)
        })
    }

    /// A worker dead-letters a task as `name`, keeping `original` beside it.
    pub fn write_dead_letter(&self, worker: &str, name: &str, bytes: &[u8], original: Option<&[u8]>) {
        self.shared.change(|s| {
            s.dead_letters.entry(worker.to_string()).or_default().insert(name.to_string(), bytes.to_vec());
            if let Some(o) = original {
                s.originals.insert((worker.to_string(), name.to_string()), Some(o.to_vec()));
            }
        });
    }

    /// A worker writes the receipt of task `id`'s start.
    pub fn write_receipt(&self, worker: &str, id: &str, bytes: &[u8]) {
        self.shared.change(|s| {
            s.receipts.insert((worker.to_string(), id.to_string()), bytes.to_vec());
        });
    }

    /// The task `id` as queued for `worker`.
    pub fn queued_task(&self, worker: &str, id: &str) -> Option<Vec<u8>> {
        self.shared.lock().queues.get(worker)?.get(id).cloned()
    }

    /// The events written, by id.
    pub fn events(&self) -> BTreeMap<String, Vec<u8>> {
        self.shared.lock().events.iter().map(|(id, (_, b))| (id.clone(), b.clone())).collect()
    }

    /// The listener writes an event (for tests of watcherctl's side alone).
    pub fn write_event(&self, id: &str, bytes: &[u8]) {
        self.shared.change(|s| {
            s.events.insert(id.to_string(), (SystemTime::now(), bytes.to_vec()));
        });
    }

    /// Names of the workers with a queue, results or a heartbeat.
    fn workers(store: &Store) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = store.queues.keys().cloned().collect();
        names.extend(store.results.keys().cloned());
        names.extend(store.heartbeats.keys().cloned());
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_task_leaves_the_queue() {
        let spool = Memory::new();
        spool.make_queue("marie");
        let mut ctl = spool.control();
        use crate::spool::control::ControlSpool;
        ctl.enqueue("marie", "t1", b"{}".to_vec()).expect("queued");
        assert_eq!(spool.queued_task("marie", "t1"), Some(b"{}".to_vec()));
        assert_eq!(spool.claim("marie", "t1"), Some(b"{}".to_vec()));
        assert_eq!(spool.claim("marie", "t1"), None);
        assert_eq!(spool.queued_task("marie", "t1"), None);
    }
}
