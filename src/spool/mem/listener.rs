//! The listener's side of the spool in memory: results read from the store's stream, each
//! worker's position taken in memory and committed with the listener's state.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Registry, Token, Waker};

use super::{ns, Change, Memory, Position, Shared};
use crate::format::summary;
use crate::spool::error::{Error, OpenError};
use crate::spool::listener::{
    Backlog, CommitError, Delivered, ListenerSpool, Note, Notices, Outgoing, Saved, StoredHeartbeat, ONE_HOST,
};

/// Where messages say the listener's state is.
const STATE_AT: &str = "memory:listener";

/// The listener's handle on a [`Memory`].
#[derive(Debug)]
pub struct MemListener {
    shared: Arc<Shared>,
    /// Per worker followed, its position as taken (ahead of the committed one).
    taken: BTreeMap<String, Position>,
    /// Changes heard of so far (an index in the store's list).
    heard: usize,
    /// Workers said to have appeared.
    announced: BTreeSet<String>,
}

impl MemListener {
    pub(super) fn new(shared: Arc<Shared>) -> MemListener {
        let heard = shared.lock().changes.len();
        MemListener { shared, taken: BTreeMap::new(), heard, announced: BTreeSet::new() }
    }
}

impl ListenerSpool for MemListener {
    fn load(&mut self) -> Result<Option<Saved>, OpenError> {
        let state = self.shared.lock().committed.state.clone();
        Ok(state.map(|bytes| Saved { at: STATE_AT.into(), bytes }))
    }

    fn start(&mut self, _discover: bool) -> Result<(), OpenError> {
        Ok(())
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let waker = Arc::new(Waker::new(registry, token)?);
        self.shared.lock().wakers.push(waker);
        Ok(())
    }

    fn workers(&mut self) -> Vec<String> {
        Memory::workers(&self.shared.lock()).into_iter().collect()
    }

    fn follow(&mut self, worker: &str, _named: bool) {
        if !self.taken.contains_key(worker) {
            let committed = self.shared.lock().committed.positions.get(worker).copied();
            // Never followed: everything written so far is history, counted from the start.
            let first = committed.unwrap_or(Position { next: 0, quiet_before_ns: Some(i64::MIN) });
            self.taken.insert(worker.to_string(), first);
        }
    }

    fn rescan(&mut self) {}

    fn prepare(&mut self) {}

    fn drain(&mut self) -> Notices {
        let store = self.shared.lock();
        let mut notices = Notices::default();
        for change in store.changes.iter().skip(self.heard) {
            match change {
                Change::Heartbeat(w) => notices.heartbeats.push(w.clone()),
                Change::Appeared(w) if !self.taken.contains_key(w) && self.announced.insert(w.clone()) => {
                    notices.appeared.push(w.clone())
                }
                Change::Appeared(_) => {}
            }
        }
        self.heard = store.changes.len();
        notices
    }

    fn results(&mut self, max: usize, backfill: Duration) -> Vec<Delivered> {
        let store = self.shared.lock();
        let quiet = ns(SystemTime::now()).saturating_sub(backfill.as_nanos().min(i64::MAX as u128) as i64);
        let mut out = Vec::new();
        for (worker, position) in self.taken.iter_mut() {
            // First sight: results older than the backfill are history.
            if position.quiet_before_ns == Some(i64::MIN) {
                position.quiet_before_ns = Some(quiet);
            }
            let mut next = position.next;
            for (i, e) in store.stream.iter().enumerate().skip(position.next) {
                if out.len() >= max {
                    break;
                }
                next = i + 1;
                if &e.worker != worker {
                    continue;
                }
                out.push(Delivered {
                    worker: worker.clone(),
                    written_ns: e.written_ns,
                    at: format!("memory:results/{worker}/{}#{i}", e.id),
                    reading: summary::read(e.bytes.as_slice(), e.bytes.len() as u64, &e.id),
                    announce: position.quiet_before_ns.is_none_or(|q| e.written_ns >= q),
                    again: false,
                });
            }
            position.next = next;
            if next >= store.stream.len() {
                position.quiet_before_ns = None;
            }
        }
        out
    }

    fn backlog(&self) -> Backlog {
        let store = self.shared.lock();
        let results = self
            .taken
            .iter()
            .map(|(w, p)| store.stream.iter().skip(p.next).filter(|e| &e.worker == w).count())
            .sum();
        Backlog { results, listings: 0 }
    }

    /// One host's, as the folders.
    fn heartbeats(&mut self, worker: &str) -> Vec<(String, StoredHeartbeat)> {
        let beat = self.shared.lock().heartbeats.get(worker).cloned();
        beat.map(|b| (ONE_HOST.to_string(), StoredHeartbeat::Found(b))).into_iter().collect()
    }

    fn write_events(&mut self, events: &[Outgoing]) -> Vec<Result<(), Error>> {
        self.shared.change(|s| {
            for e in events {
                s.events.insert(e.id.clone(), (SystemTime::now(), e.json.clone()));
            }
        });
        events.iter().map(|_| Ok(())).collect()
    }

    fn event_at(&self, id: &str) -> String {
        format!("memory:events/{id}")
    }

    fn state_at(&self) -> String {
        STATE_AT.into()
    }

    fn dirty(&self) -> bool {
        let store = self.shared.lock();
        self.taken.iter().any(|(w, p)| store.committed.positions.get(w) != Some(p))
    }

    fn commit(&mut self, state: serde_json::Value) -> Result<(), CommitError> {
        let bytes = serde_json::to_vec(&state).unwrap_or_default();
        let mut store = self.shared.lock();
        store.committed.positions.extend(self.taken.iter().map(|(w, p)| (w.clone(), *p)));
        store.committed.state = Some(bytes);
        Ok(())
    }

    fn next_deadline(&self, _settle: bool) -> Option<Instant> {
        None
    }

    fn tick(&mut self, _now: Instant, _settle: bool) {}

    fn notes(&mut self) -> Vec<Note> {
        Vec::new()
    }
}
