//! watcherctl's side of the spool in memory.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use super::{Memory, Shared};
use crate::format::task::STATE_KEY;
use crate::spool::control::{
    ControlSpool, EventFeed, EventsRead, Known, Listed, Pending, Place, Queued, Stored, StoredEvent, Waiter,
};
use crate::spool::error::Error;

fn missing(doing: &str, at: String) -> Error {
    Error::new(doing, at, io::Error::from(io::ErrorKind::NotFound))
}

/// watcherctl's handle on a [`Memory`].
#[derive(Debug)]
pub struct MemControl {
    shared: Arc<Shared>,
}

impl MemControl {
    pub(super) fn new(shared: Arc<Shared>) -> MemControl {
        MemControl { shared }
    }
}

/// Wakes at every change of the store after it was made.
struct MemWaiter {
    shared: Arc<Shared>,
    seen: u64,
}

impl MemWaiter {
    fn new(shared: Arc<Shared>) -> MemWaiter {
        let seen = shared.lock().generation;
        MemWaiter { shared, seen }
    }
}

impl Waiter for MemWaiter {
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<bool> {
        let mut store = self.shared.lock();
        while store.generation == self.seen {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
                None => None,
            };
            // A poisoned lock gives the store back all the same (see `Shared::lock`).
            store = match left {
                Some(left) => match self.shared.changed.wait_timeout(store, left) {
                    Ok((s, _)) => s,
                    Err(p) => p.into_inner().0,
                },
                None => self.shared.changed.wait(store).unwrap_or_else(|p| p.into_inner()),
            };
        }
        self.seen = store.generation;
        Ok(true)
    }
}

struct MemEvents {
    shared: Arc<Shared>,
    waiter: Option<MemWaiter>,
    seen: HashSet<String>,
}

impl EventFeed for MemEvents {
    fn next(&mut self, wait: bool) -> Result<EventsRead, Error> {
        if let (true, Some(w)) = (wait, self.waiter.as_mut()) {
            w.wait(None).map_err(|e| Error::new("cannot wait for", "memory:events", e))?;
        }
        let store = self.shared.lock();
        let mut read = EventsRead::default();
        for (id, (written, bytes)) in &store.events {
            if self.seen.contains(id) {
                continue;
            }
            if let Ok(value) = serde_json::from_slice(bytes) {
                self.seen.insert(id.clone());
                read.events.push(StoredEvent { name: id.clone(), written: *written, value });
            }
        }
        Ok(read)
    }
}

impl ControlSpool for MemControl {
    fn locate(&self, place: Place) -> String {
        match place {
            Place::Root => "memory:".into(),
            Place::Queue(w) => format!("memory:tasks/{w}"),
            Place::Heartbeat(w) => format!("memory:heartbeats/{w}"),
            Place::Result(w, id) => format!("memory:results/{w}/{id}"),
            Place::Events => "memory:events".into(),
        }
    }

    fn workers(&self) -> BTreeSet<String> {
        let store = self.shared.lock();
        let mut names: BTreeSet<String> = store.queues.keys().cloned().collect();
        names.extend(store.heartbeats.keys().cloned());
        names
    }

    fn known(&self, worker: &str) -> Known {
        let s = self.shared.lock();
        Known {
            queue: s.queues.contains_key(worker),
            heartbeat: s.heartbeats.contains_key(worker),
            results: s.results.contains_key(worker),
            dead_letters: s.dead_letters.contains_key(worker),
        }
    }

    fn create_queue(&mut self, worker: &str) -> Result<(), Error> {
        Memory { shared: self.shared.clone() }.make_queue(worker);
        Ok(())
    }

    fn pending(&self, worker: &str, id: &str) -> Option<Pending> {
        let s = self.shared.lock();
        if s.queues.get(worker).is_some_and(|q| q.contains_key(id)) {
            Some(Pending::Queued)
        } else if s.inflight.get(worker).is_some_and(|q| q.contains_key(id)) {
            Some(Pending::InFlight)
        } else {
            None
        }
    }

    fn queued(&self, worker: &str) -> usize {
        self.shared.lock().queues.get(worker).map_or(0, |q| q.len())
    }

    /// In the order of the ids (the memory keeps no times: every `queued_at` is the epoch).
    fn tasks(&self, worker: &str) -> Result<Vec<Listed>, Error> {
        let s = self.shared.lock();
        let key = |id: &str| (worker.to_string(), id.to_string());
        let mut out = Vec::new();
        for (map, pending) in [(&s.queues, Pending::Queued), (&s.inflight, Pending::InFlight)] {
            for (id, bytes) in map.get(worker).into_iter().flatten() {
                let (state, receipt) = match pending {
                    Pending::Queued => (None, None),
                    Pending::InFlight => (
                        serde_json::from_slice::<serde_json::Value>(bytes)
                            .ok()
                            .and_then(|mut d| serde_json::from_value(d.get_mut(STATE_KEY)?.take()).ok()),
                        s.receipts.get(&key(id)).and_then(|b| serde_json::from_slice(b).ok()),
                    ),
                };
                let cancel_requested = s.cancels.contains_key(&key(id));
                out.push(Listed {
                    id: id.clone(),
                    pending,
                    queued_at: UNIX_EPOCH,
                    state,
                    receipt,
                    cancel_requested,
                });
            }
        }
        Ok(out)
    }

    fn request_cancel(&mut self, worker: &str, id: &str, by: &str) -> Result<(), Error> {
        self.shared.change(|s| {
            s.cancels.entry((worker.to_string(), id.to_string())).or_insert_with(|| by.to_string());
        });
        Ok(())
    }

    fn enqueue(&mut self, worker: &str, id: &str, task: Vec<u8>) -> Result<Queued, Error> {
        let at = self.locate(Place::Queue(worker));
        self.shared.change(|s| match s.queues.get_mut(worker) {
            None => Err(missing("cannot queue in", at)),
            Some(q) if q.contains_key(id) => Ok(Queued::Taken),
            Some(q) => {
                q.insert(id.to_string(), task);
                Ok(Queued::At(format!("{at}/{id}")))
            }
        })
    }

    fn pipe(&self, _worker: &str) -> Option<PathBuf> {
        None
    }

    fn result(&self, worker: &str, id: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.shared.lock().results.get(worker).and_then(|r| r.get(id)).cloned())
    }

    fn result_exists(&self, worker: &str, id: &str) -> bool {
        self.shared.lock().results.get(worker).is_some_and(|r| r.contains_key(id))
    }

    fn set_aside_result(&mut self, worker: &str, id: &str) -> Result<(), Error> {
        let at = self.locate(Place::Result(worker, id));
        self.shared.change(|s| {
            let bytes = s
                .results
                .get_mut(worker)
                .and_then(|r| r.remove(id))
                .ok_or_else(|| missing("cannot move", at))?;
            s.aside.push((worker.to_string(), id.to_string(), bytes));
            Ok(())
        })
    }

    fn watch_results(&self, _worker: &str) -> Result<Box<dyn Waiter>, Error> {
        Ok(Box::new(MemWaiter::new(self.shared.clone())))
    }

    fn heartbeat(&self, worker: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.shared.lock().heartbeats.get(worker).cloned())
    }

    fn dead_letters(&self, worker: &str) -> Result<Vec<Stored>, Error> {
        let s = self.shared.lock();
        let letters = s.dead_letters.get(worker).into_iter().flatten();
        let at = |name: &str| format!("memory:dlq/{worker}/{name}");
        Ok(letters
            .map(|(name, bytes)| Stored { name: name.clone(), at: at(name), bytes: bytes.clone() })
            .collect())
    }

    fn original(&self, worker: &str, letter: &Stored, _max: u64) -> Result<Option<Vec<u8>>, Error> {
        match self.shared.lock().originals.get(&(worker.to_string(), letter.name.clone())) {
            None => Ok(None),
            Some(Some(bytes)) => Ok(Some(bytes.clone())),
            Some(None) => Err(missing("cannot read its original file", format!("{}.orig", letter.at))),
        }
    }

    fn drop_original(&mut self, worker: &str, letter: &Stored) {
        self.shared.change(|s| {
            if let Some(kept) = s.originals.get_mut(&(worker.to_string(), letter.name.clone())) {
                *kept = None;
            }
        });
    }

    fn retire(&mut self, worker: &str, letter: &Stored) -> Result<(), Error> {
        self.shared.change(|s| {
            let bytes = s.dead_letters.get_mut(worker).and_then(|d| d.remove(&letter.name));
            let bytes = bytes.ok_or_else(|| missing("cannot move", letter.at.clone()))?;
            s.retired.push((worker.to_string(), letter.name.clone(), bytes));
            Ok(())
        })
    }

    fn purge(&mut self, worker: &str, letters: &[Stored]) -> Result<(), Error> {
        self.shared.change(|s| {
            for l in letters {
                if let Some(kept) = s.originals.get_mut(&(worker.to_string(), l.name.clone())) {
                    *kept = None;
                }
                if let Some(d) = s.dead_letters.get_mut(worker) {
                    d.remove(&l.name);
                }
            }
        });
        Ok(())
    }

    fn events(&self, follow: bool) -> Result<Box<dyn EventFeed>, Error> {
        let waiter = follow.then(|| MemWaiter::new(self.shared.clone()));
        Ok(Box::new(MemEvents { shared: self.shared.clone(), waiter, seen: HashSet::new() }))
    }
}
