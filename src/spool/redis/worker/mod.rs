//! The worker's spool on the engine: [`RedisSpool`], a [`Spool`] that claims by itself.
//!
//! Every turn the loop tells it how many tasks may start ([`Spool::claim_slots`]) and stages
//! its ops; `commit` sends one pipelined batch to the I/O thread (when the one before is
//! back: a group commit, one AOF sync for all of it), with a `claim` for the free slots when
//! entries may wait (the wake-up thread's `XREAD` saw arrivals, or the last claim was full),
//! a `reclaim` of dead hosts' entries when the [`ReclaimGate`] is open, the lease renewal at
//! each heartbeat, and the promotion of due retries. The replies come back by the bell, and
//! `intake` hands the loop what they delivered. Nothing here waits for the engine, except the
//! synchronous methods of start-up recovery and the pipe intake (sync.rs).
//!
//! The consumer name is SPOOL_CONSUMER, guarded by a local lock (one daemon per worker and
//! host). After every (re)connect the consumer's own pending list is read first: claims whose
//! reply was lost are found there, and nothing is reclaimed from others for one lease.

mod arm;
mod sync;
mod tasks;
#[cfg(test)]
mod tests;
mod turn;
mod work;

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::link::{Link, State};
use super::wakeup::{Arm, From, Wakeup};
use crate::engine::redis::keys::{Fleet, GROUP};
use crate::engine::redis::lease::ReclaimGate;
use crate::engine::redis::ops::{Held, Queue};
use crate::engine::redis::settings::Settings;
use crate::spool::listener::Note;
use crate::spool::{
    CancelRequest, Claim, Done, EntryId, Intake, Layout, Loaded, Op, OpenError, Readiness, Rejected, Scan,
    Spool,
};
use tasks::Tasks;
use work::Work;

/// How long a failed outcome waits before it is sent again.
const RETRY: Duration = Duration::from_secs(1);
/// How long claims wait after the worker's shared pause said "no end" (set by hand).
const PAUSE_RECHECK: Duration = Duration::from_secs(5);

/// What the loop collects at its next `intake`.
#[derive(Default)]
struct Out {
    cancels: Vec<CancelRequest>,
    withdrawn: Vec<String>,
    claimed: Vec<Claim>,
    reclaimed: Vec<Claim>,
    gone: Vec<EntryId>,
    notes: Vec<Note>,
    dones: Vec<Done>,
}

/// The claims' side: free slots, claims in flight, what may wait, the reclaim rule.
struct Claims {
    free: usize,
    requested: usize,
    /// Entries may wait undelivered.
    more: bool,
    paused_until: Option<Instant>,
    gate: ReclaimGate,
    reclaim_at: Instant,
    cursor: String,
    promote_at: Option<Instant>,
    /// The own pending list is to be read (after a reconnect).
    recover: bool,
    /// Connections seen so far.
    connects: u64,
    /// The loop read its leftovers (the own pending list): claims may be made from now on.
    started: bool,
    queued: Option<usize>,
    /// The slots reserved for the claim armed with the wake-up thread (counted in
    /// `requested`), and whether the queue's depth is to be read after one was made.
    armed: usize,
    depth_due: bool,
}

/// The batch in flight: its id, and what each call is for.
struct InFlight {
    id: u64,
    works: Vec<Work>,
}

pub(crate) struct RedisSpool {
    settings: Settings,
    queue: Queue,
    ledger_key: String,
    replicas: bool,
    link: std::cell::RefCell<Link>,
    wakeup: Option<Wakeup>,
    /// The claim left with the wake-up thread for the next arrival.
    arm: Arm,
    _lock: File,
    tasks: Tasks,
    claims: Claims,
    staged: Vec<Work>,
    failed: Vec<Work>,
    retry_at: Option<Instant>,
    in_flight: Option<InFlight>,
    out: Out,
    /// The link's state last reported in a note.
    said: Option<State>,
    cancels: Cancels,
}

/// The worker's requests to cancel a task (`watcherctl cancel`): a hash in the engine, read
/// when its bell stream rings (the wake-up), at each heartbeat and after every connect.
#[derive(Default)]
struct Cancels {
    /// A read is due.
    due: bool,
    /// Requests handed to the loop already (by task id), so each is handed out once.
    handed: std::collections::HashSet<String>,
}

impl RedisSpool {
    /// Takes the worker's local lock and starts connecting (in the background: the loop
    /// waits on [`Spool::readiness`]).
    pub(crate) fn open(worker: &str, settings: &Settings, paths: &Layout) -> Result<RedisSpool, OpenError> {
        let lock = super::super::fs::lock_engine_worker(worker, paths)?;
        let keys = Fleet::new(&settings.prefix).worker(worker);
        let verdict = Arc::new(Mutex::new(None));
        let link = Link::spawn(super::connector(settings, Some(keys.clone()), verdict.clone()), verdict)
            .map_err(|e| OpenError::Io(format!("cannot start the engine's I/O thread: {e}")))?;
        let now = Instant::now();
        let lease = settings.lease;
        Ok(RedisSpool {
            ledger_key: keys.ledger(&settings.consumer),
            queue: Queue::new(keys, &settings.consumer),
            replicas: super::waits_for_replicas(settings),
            settings: settings.clone(),
            link: std::cell::RefCell::new(link),
            wakeup: None,
            arm: Arm::default(),
            _lock: lock,
            tasks: Tasks::default(),
            claims: Claims {
                free: 0,
                requested: 0,
                more: true,
                paused_until: None,
                gate: ReclaimGate::new(lease, ReclaimGate::default_slow(lease), now),
                reclaim_at: now + lease,
                cursor: "0-0".into(),
                promote_at: Some(now),
                recover: false,
                connects: 0,
                started: false,
                queued: None,
                armed: 0,
                depth_due: false,
            },
            staged: Vec::new(),
            failed: Vec::new(),
            retry_at: None,
            in_flight: None,
            out: Out::default(),
            said: None,
            cancels: Cancels { due: true, ..Cancels::default() },
        })
    }

    /// Waits until the engine is connected, at most `limit` (tests, tools).
    #[cfg(test)]
    pub(crate) fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        self.link.get_mut().wait_state(deadline);
        self.pump();
    }
}

impl Spool for RedisSpool {
    fn register(&mut self, registry: &Registry, token: Token, _writes: Token) -> io::Result<()> {
        self.link.get_mut().bell().hang(registry, token)?;
        if self.wakeup.is_none() {
            let bell = self.link.get_mut().bell().clone();
            let keys = self.queue.keys();
            let streams = vec![(keys.queue(), From::Group(GROUP)), (keys.cancel_bell(), From::Newest)];
            let arm = Some((self.arm.clone(), self.queue.clone()));
            self.wakeup = Some(Wakeup::spawn(&self.settings, streams, bell, arm)?);
        }
        Ok(())
    }

    fn intake(&mut self, _registry: &Registry, _token: Token) -> io::Result<Intake> {
        self.pump();
        let out = &mut self.out;
        // Only what is still held (a claim let go before the loop took it is not handed out).
        let held = |c: &Claim| self.tasks.holds_entry(&c.key);
        let claimed = std::mem::take(&mut out.claimed).into_iter().filter(held).collect();
        let reclaimed = std::mem::take(&mut out.reclaimed).into_iter().filter(held).collect();
        Ok(Intake {
            claimed,
            reclaimed,
            gone: std::mem::take(&mut out.gone),
            cancels: std::mem::take(&mut out.cancels),
            withdrawn: std::mem::take(&mut out.withdrawn),
            ..Intake::default()
        })
    }

    fn scan(&mut self) -> io::Result<Scan> {
        self.sync_scan()
    }

    fn leftovers(&mut self) -> io::Result<Vec<Claim>> {
        self.sync_leftovers()
    }

    fn claim(&mut self, _wanted: &EntryId) -> io::Result<Option<Claim>> {
        self.sync_claim()
    }

    #[allow(clippy::result_large_err)]
    fn load(&mut self, claim: &Claim, max_bytes: u64, worker: &str) -> Result<Loaded, Rejected> {
        self.tasks.load(claim, max_bytes, worker)
    }

    fn result_exists(&self, task_id: &str) -> bool {
        // A held task's result was checked by the script that delivered it.
        !self.tasks.holds_task(task_id) && self.sync_result(task_id).is_some()
    }

    fn result_is_invalid(&self, task_id: &str) -> bool {
        !self.tasks.holds_task(task_id) && self.sync_result(task_id).is_some_and(|r| r.is_invalid())
    }

    fn set_aside_result(&mut self, task_id: &str) -> io::Result<()> {
        // The engine refuses a task whose result exists: no corrected task reaches a worker.
        Err(io::Error::other(format!("the result of {task_id} is kept in the engine until RESULT_TTL")))
    }

    fn requeue(&mut self, claim: &Claim) -> io::Result<()> {
        self.tasks.ending(&claim.key);
        self.staged.push(Work::Requeue(tasks::held(claim)));
        Ok(())
    }

    fn put_back(&mut self, claim: &Claim) -> io::Result<EntryId> {
        // Only tasks written in place are put back; the engine has none.
        Err(io::Error::other(format!("{} cannot be put back: the engine has no task files", claim.key)))
    }

    fn discard(&mut self, claim: &Claim) -> io::Result<()> {
        self.tasks.ending(&claim.key);
        self.staged.push(Work::Discard(tasks::held(claim)));
        Ok(())
    }

    fn withdraw(&mut self, task_id: &str) -> io::Result<Option<Claim>> {
        self.sync_withdraw(task_id)
    }

    fn drop_request(&mut self, request: &CancelRequest) -> io::Result<()> {
        self.cancels.handed.remove(&request.task_id);
        self.staged.push(Work::DropRequest(request.task_id.clone()));
        Ok(())
    }

    fn submit(&mut self, tasks: Vec<(String, Vec<u8>)>) -> Vec<io::Result<EntryId>> {
        self.sync_submit(tasks)
    }

    fn stage(&mut self, op: Op) {
        if let Some(key) = work::kind_of(&op).1.filter(|_| work::ends(&op)) {
            self.tasks.ending(&key);
        }
        if let Op::Receipt(r) = &op {
            // The claim script wrote the inflight record already: the receipt is only kept
            // with the task for `watcherctl tasks`, and its write is not waited for.
            if let Some(entry) = self.tasks.entry_of(&r.task_id) {
                let held = Held { id: r.task_id.clone(), entry: entry.lossy().into_owned() };
                self.staged.push(Work::Receipt(held, serde_json::to_vec(r).unwrap_or_default()));
            }
            let (kind, key) = work::kind_of(&op);
            self.out.dones.push(Done { kind, key, error: None });
            return;
        }
        self.staged.push(Work::Op(op));
    }

    fn commit(&mut self) -> Vec<Done> {
        self.pump();
        let now = Instant::now();
        self.send_turn(now);
        self.rearm(now);
        std::mem::take(&mut self.out.dones)
    }

    fn commit_wait(&mut self) -> Vec<Done> {
        self.drain_wait();
        std::mem::take(&mut self.out.dones)
    }

    fn busy(&self) -> bool {
        self.in_flight.is_some() || !self.staged.is_empty() || !self.failed.is_empty()
    }

    fn ledger(&self) -> io::Result<Option<Vec<u8>>> {
        self.sync_ledger()
    }

    fn has_pending(&self) -> bool {
        !self.failed.is_empty()
    }

    fn readiness(&self) -> Readiness {
        let link = self.link.borrow();
        match link.state() {
            State::Up => Readiness::Ready,
            State::Connecting => Readiness::Connecting(super::describe(&self.settings)),
            State::Down(e) => match link.verdict().and_then(|v| v.refusals.first().cloned()) {
                Some(refusal) => Readiness::Refused(format!("SPOOL: {refusal}")),
                None => Readiness::Waiting(format!("{}: {e}", super::describe(&self.settings))),
            },
        }
    }

    fn claims_itself(&self) -> bool {
        true
    }

    fn claim_slots(&mut self, free: usize) {
        self.claims.free = free;
    }

    fn keeps_retries(&self) -> bool {
        true
    }

    fn queued(&self) -> Option<usize> {
        self.claims.queued
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.deadline()
    }

    fn notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.out.notes)
    }
}
