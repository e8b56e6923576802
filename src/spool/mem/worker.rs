//! The worker's spool in memory: the second implementation of [`Spool`] that keeps the seam
//! honest, and the backend of the loop's fast tests. It behaves like a stream with a consumer
//! group, the other kind of backend the trait is made for: a claim hands out the oldest queued
//! entry whichever one the loop asked for, and a restart finds what was claimed as leftovers.
//!
//! Everything is in a [`Store`] shared with the test through [`MemSpool::store`], which
//! submits tasks, takes entries as another consumer would, makes writes fail, and reads what
//! the worker wrote. Ops are applied when committed; their outcomes come back at once.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::SystemTime;

use std::io::{Read, Write};

use mio::unix::pipe;
use mio::{Interest, Registry, Token};
use serde_json::Value;

use crate::agent::reason::Reason;
use crate::format::records::{DeadLetter, Heartbeat, Receipt, TaskResult, FAILED};
use crate::format::task::{Invalid, Task};
use crate::spool::{
    CancelRequest, Claim, Done, Entry, EntryId, Intake, Loaded, Op, OpKind, Rejected, Scan, Spool,
};

/// A task as stored: its id in the queue, its content, when it was queued.
#[derive(Clone, Debug)]
struct Stored {
    id: EntryId,
    bytes: Vec<u8>,
    queued_at: SystemTime,
}

/// Everything the spool holds, and what the worker wrote.
#[derive(Default)]
pub struct Store {
    queue: VecDeque<Stored>,
    /// Claimed tasks by claim key.
    claimed: BTreeMap<EntryId, Stored>,
    /// Arrivals not yet reported.
    arrivals: Vec<EntryId>,
    /// A self-pipe that makes arrivals an event of the loop (a poll has one `Waker` at most,
    /// and the agents may hold it).
    bell: Option<(pipe::Sender, pipe::Receiver)>,
    staged: Vec<Op>,
    /// Ops whose write failed, tried again at the next commit.
    failed: Vec<Op>,
    ledger: Option<Vec<u8>>,
    /// Final results by task id, and those set aside.
    pub results: BTreeMap<String, TaskResult>,
    pub set_aside: Vec<TaskResult>,
    pub dead_letters: Vec<DeadLetter>,
    pub receipts: Vec<Receipt>,
    pub heartbeats: Vec<Heartbeat>,
    /// While set, every write of an outcome fails (a full disk, an engine out of memory).
    pub fail_writes: bool,
    /// Requests to cancel a task not dropped yet, by key; and those not yet reported.
    pub cancels: BTreeMap<EntryId, CancelRequest>,
    new_cancels: Vec<CancelRequest>,
}

impl Store {
    /// Queues `bytes` under `id` (or `id~n` when taken), as a producer would.
    pub fn submit(&mut self, id: &str, bytes: &[u8]) -> EntryId {
        let taken = |s: &Store, c: &EntryId| s.queue.iter().any(|t| t.id == *c) || s.claimed.contains_key(c);
        let mut candidate = EntryId::from(id);
        let mut n = 0;
        while taken(self, &candidate) {
            n += 1;
            candidate = EntryId::from(format!("{id}~{n}"));
        }
        self.queue.push_back(Stored {
            id: candidate.clone(),
            bytes: bytes.to_vec(),
            queued_at: SystemTime::now(),
        });
        self.arrived(candidate.clone());
        candidate
    }

    fn arrived(&mut self, id: EntryId) {
        self.arrivals.push(id);
        self.ring();
    }

    fn ring(&mut self) {
        if let Some((tx, _)) = &mut self.bell {
            // Full: the loop has a wake-up pending anyway.
            let _ = tx.write(&[1]);
        }
    }

    /// watcherctl asks the worker to cancel task `id` (one request per task).
    pub fn request_cancel(&mut self, id: &str) {
        let key = EntryId::from(format!("cancel:{id}"));
        let r = CancelRequest { key: key.clone(), task_id: id.to_string(), by: "test".into() };
        self.cancels.insert(key, r.clone());
        self.new_cancels.push(r);
        self.ring();
    }

    /// Rings for arrivals made before the loop listened.
    fn arrived_before_register(&mut self) {
        if let Some((tx, _)) = &mut self.bell {
            let _ = tx.write(&[1]);
        }
    }

    /// Another consumer claims the oldest queued task: it is gone for this worker.
    pub fn take_elsewhere(&mut self) -> Option<EntryId> {
        self.queue.pop_front().map(|t| t.id)
    }

    /// Ids queued and not claimed, oldest first.
    pub fn queued(&self) -> Vec<EntryId> {
        self.queue.iter().map(|t| t.id.clone()).collect()
    }

    /// Keys of the claimed tasks.
    pub fn claimed(&self) -> Vec<EntryId> {
        self.claimed.keys().cloned().collect()
    }

    pub fn last_heartbeat(&self) -> Option<&Heartbeat> {
        self.heartbeats.last()
    }

    /// Writes one op; `false` when it failed.
    fn apply(&mut self, op: &Op) -> bool {
        let outcome = !matches!(op, Op::Receipt(_) | Op::Heartbeat(_) | Op::Ledger(_));
        if self.fail_writes && outcome {
            return false;
        }
        match op {
            Op::Complete { claim, result } => {
                self.results.insert(result.task_id.clone(), result.clone());
                self.claimed.remove(&claim.key);
            }
            Op::DeadLetter { claim, record, result, .. } => {
                self.dead_letters.push(record.clone());
                if let Some(r) = result {
                    self.results.insert(r.task_id.clone(), r.clone());
                }
                self.claimed.remove(&claim.key);
            }
            Op::SaveState { claim, task, .. } => {
                if let Some(t) = self.claimed.get_mut(&claim.key) {
                    t.bytes = task.to_bytes();
                }
            }
            Op::Requeue { claim, task, queued_at } => {
                if self.claimed.remove(&claim.key).is_some() {
                    let stored =
                        Stored { id: claim.source.clone(), bytes: task.to_bytes(), queued_at: *queued_at };
                    self.queue.push_back(stored);
                }
            }
            Op::Receipt(r) => self.receipts.push(r.clone()),
            Op::Heartbeat(h) => self.heartbeats.push(h.clone()),
            Op::Ledger(bytes) => self.ledger = Some(bytes.clone()),
        }
        true
    }
}

/// The spool over a shared [`Store`].
#[derive(Clone, Default)]
pub struct MemSpool {
    store: Rc<RefCell<Store>>,
}

impl MemSpool {
    pub fn new() -> MemSpool {
        MemSpool::default()
    }

    /// A spool over an existing store: the same spool after a restart.
    pub fn with_store(store: Rc<RefCell<Store>>) -> MemSpool {
        MemSpool { store }
    }

    /// The store, shared: what a test reads and changes.
    pub fn store(&self) -> Rc<RefCell<Store>> {
        self.store.clone()
    }
}

fn kind_of(op: &Op) -> (OpKind, Option<EntryId>) {
    match op {
        Op::Complete { claim, .. } => (OpKind::Complete, Some(claim.key.clone())),
        Op::DeadLetter { claim, .. } => (OpKind::DeadLetter, Some(claim.key.clone())),
        Op::SaveState { claim, .. } => (OpKind::SaveState, Some(claim.key.clone())),
        Op::Requeue { claim, .. } => (OpKind::Requeue, Some(claim.key.clone())),
        Op::Receipt(_) => (OpKind::Receipt, None),
        Op::Heartbeat(_) => (OpKind::Heartbeat, None),
        Op::Ledger(_) => (OpKind::Ledger, None),
    }
}

/// The rejection of content that is not a valid task.
fn rejected(why: Invalid, id: &EntryId, bytes: &[u8]) -> Rejected {
    let doc = serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object);
    let preview = doc.is_none().then(|| String::from_utf8_lossy(bytes).into_owned());
    Rejected {
        why,
        fallback_id: Some(id.lossy().into_owned()),
        doc,
        preview,
        keep_original: false,
        unfinished: None,
    }
}

impl Spool for MemSpool {
    fn register(&mut self, registry: &Registry, token: Token, _writes: Token) -> io::Result<()> {
        let (tx, mut rx) = pipe::new()?;
        registry.register(&mut rx, token, Interest::READABLE)?;
        let mut s = self.store.borrow_mut();
        s.bell = Some((tx, rx));
        if !s.arrivals.is_empty() {
            s.arrived_before_register();
        }
        Ok(())
    }

    fn intake(&mut self, _registry: &Registry, _token: Token) -> io::Result<Intake> {
        let mut s = self.store.borrow_mut();
        if let Some((_, rx)) = &mut s.bell {
            // Drained to the end, so that the next arrival is a new edge.
            let mut buf = [0u8; 64];
            while rx.read(&mut buf).is_ok_and(|n| n > 0) {}
        }
        let arrivals = std::mem::take(&mut s.arrivals);
        let cancels = std::mem::take(&mut s.new_cancels);
        Ok(Intake { arrivals, cancels, ..Intake::default() })
    }

    fn scan(&mut self) -> io::Result<Scan> {
        let s = self.store.borrow();
        let entries = s.queue.iter().map(|t| Entry { id: t.id.clone(), arrived: t.queued_at }).collect();
        Ok(Scan { entries, ignored: Vec::new(), cancels: s.cancels.values().cloned().collect() })
    }

    fn leftovers(&mut self) -> io::Result<Vec<Claim>> {
        let s = self.store.borrow();
        Ok(s.claimed
            .iter()
            .map(|(key, t)| Claim { key: key.clone(), source: t.id.clone(), file: None })
            .collect())
    }

    /// The oldest queued task, whichever was `wanted` (a stream hands out its own next).
    fn claim(&mut self, _wanted: &EntryId) -> io::Result<Option<Claim>> {
        let mut s = self.store.borrow_mut();
        let Some(task) = s.queue.pop_front() else { return Ok(None) };
        let claim = Claim { key: task.id.clone(), source: task.id.clone(), file: None };
        s.claimed.insert(task.id.clone(), task);
        Ok(Some(claim))
    }

    #[allow(clippy::result_large_err)]
    fn load(&mut self, claim: &Claim, max_bytes: u64, worker: &str) -> Result<Loaded, Rejected> {
        let s = self.store.borrow();
        let Some(t) = s.claimed.get(&claim.key) else {
            return Err(rejected(Invalid::Unreadable("not claimed".into()), &claim.source, b""));
        };
        let size = t.bytes.len() as u64;
        if size > max_bytes {
            return Err(rejected(Invalid::TooLarge { size, max: max_bytes }, &t.id, b""));
        }
        match Task::parse(&t.bytes, &t.id.lossy(), worker) {
            Ok(task) => Ok(Loaded { task, queued_at: t.queued_at }),
            Err(why) => Err(rejected(why, &t.id, &t.bytes)),
        }
    }

    fn result_exists(&self, task_id: &str) -> bool {
        self.store.borrow().results.contains_key(task_id)
    }

    fn result_is_invalid(&self, task_id: &str) -> bool {
        self.store
            .borrow()
            .results
            .get(task_id)
            .is_some_and(|r| r.status == FAILED && r.reason.as_deref() == Some(Reason::Invalid.as_str()))
    }

    fn set_aside_result(&mut self, task_id: &str) -> io::Result<()> {
        let mut s = self.store.borrow_mut();
        let r = s.results.remove(task_id).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.set_aside.push(r);
        Ok(())
    }

    fn requeue(&mut self, claim: &Claim) -> io::Result<()> {
        let mut s = self.store.borrow_mut();
        let t = s.claimed.remove(&claim.key).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let id = t.id.clone();
        s.queue.push_back(t);
        s.arrived(id);
        Ok(())
    }

    fn put_back(&mut self, claim: &Claim) -> io::Result<EntryId> {
        let mut s = self.store.borrow_mut();
        let t = s.claimed.remove(&claim.key).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let id = t.id.clone();
        s.queue.push_back(t);
        Ok(id)
    }

    fn discard(&mut self, claim: &Claim) -> io::Result<()> {
        self.store.borrow_mut().claimed.remove(&claim.key);
        Ok(())
    }

    /// The queued task whose id (as submitted) is `task_id`, whatever the stream's order.
    fn withdraw(&mut self, task_id: &str) -> io::Result<Option<Claim>> {
        let mut s = self.store.borrow_mut();
        let Some(i) = s.queue.iter().position(|t| t.id.as_bytes() == task_id.as_bytes()) else {
            return Ok(None);
        };
        let Some(task) = s.queue.remove(i) else { return Ok(None) };
        let claim = Claim { key: task.id.clone(), source: task.id.clone(), file: None };
        s.claimed.insert(task.id.clone(), task);
        Ok(Some(claim))
    }

    fn drop_request(&mut self, request: &CancelRequest) -> io::Result<()> {
        self.store.borrow_mut().cancels.remove(&request.key);
        Ok(())
    }

    fn submit(&mut self, tasks: Vec<(String, Vec<u8>)>) -> Vec<io::Result<EntryId>> {
        let mut s = self.store.borrow_mut();
        tasks.into_iter().map(|(id, bytes)| Ok(s.submit(&id, &bytes))).collect()
    }

    fn stage(&mut self, op: Op) {
        self.store.borrow_mut().staged.push(op);
    }

    fn commit(&mut self) -> Vec<Done> {
        let mut s = self.store.borrow_mut();
        let mut ops = std::mem::take(&mut s.failed);
        ops.append(&mut s.staged);
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            let (kind, key) = kind_of(&op);
            if s.apply(&op) {
                done.push(Done { kind, key, error: None });
            } else {
                done.push(Done { kind, key, error: Some(io::Error::other("writes fail (fail_writes)")) });
                s.failed.push(op);
            }
        }
        done
    }

    fn commit_wait(&mut self) -> Vec<Done> {
        self.commit()
    }

    fn busy(&self) -> bool {
        let s = self.store.borrow();
        !s.staged.is_empty() || !s.failed.is_empty()
    }

    fn ledger(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.store.borrow().ledger.clone())
    }

    fn has_pending(&self) -> bool {
        !self.store.borrow().failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &[u8] = br#"{"description": "x"}"#;

    #[test]
    fn a_claim_hands_out_the_oldest_entry_and_a_result_releases_it() {
        let mut spool = MemSpool::new();
        let store = spool.store();
        let a = store.borrow_mut().submit("a", TASK);
        let b = store.borrow_mut().submit("b", TASK);
        let claim = spool.claim(&b).expect("claim").expect("claimed");
        assert_eq!(claim.source, a, "a stream hands out its own next entry");
        let loaded = spool.load(&claim, 1000, "marie").expect("load");
        assert_eq!(loaded.task.id, "a");
        let result = TaskResult::new("a".into(), "marie".into(), "h".into(), String::new());
        spool.stage(Op::Complete { claim: claim.clone(), result });
        let done = spool.commit();
        assert!(done[0].error.is_none() && done[0].key == Some(claim.key));
        assert!(spool.result_exists("a"));
        assert!(store.borrow().claimed().is_empty());
        assert_eq!(store.borrow().queued(), vec![b]);
    }

    #[test]
    fn failed_writes_wait_and_leftovers_survive_a_restart() {
        let mut spool = MemSpool::new();
        let store = spool.store();
        let id = store.borrow_mut().submit("t", TASK);
        let claim = spool.claim(&id).expect("claim").expect("claimed");
        store.borrow_mut().fail_writes = true;
        let result = TaskResult::new("t".into(), "marie".into(), "h".into(), String::new());
        spool.stage(Op::Complete { claim: claim.clone(), result });
        assert!(spool.commit()[0].error.is_some());
        assert!(spool.has_pending() && !spool.result_exists("t"));
        // A new spool over the same store: the claimed task is a leftover.
        let mut again = MemSpool { store: store.clone() };
        assert_eq!(again.leftovers().expect("leftovers"), vec![claim]);
        store.borrow_mut().fail_writes = false;
        assert!(spool.commit()[0].error.is_none(), "tried again");
        assert!(spool.result_exists("t"));
    }

    #[test]
    fn content_that_is_not_a_task_is_rejected_with_its_id() {
        let mut spool = MemSpool::new();
        let store = spool.store();
        let id = store.borrow_mut().submit("bad", b"not json");
        let claim = spool.claim(&id).expect("claim").expect("claimed");
        let r = spool.load(&claim, 1000, "marie").expect_err("rejected");
        assert!(matches!(r.why, Invalid::NotJson(_)));
        assert_eq!((r.fallback_id.as_deref(), r.preview.as_deref()), (Some("bad"), Some("not json")));
    }
}
