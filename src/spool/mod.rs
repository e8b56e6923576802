//! The spool: where tasks wait, how one is claimed, and where outcomes are made durable.
//!
//! The worker's loop speaks only to the [`Spool`] trait. Two kinds of backend fit it: one
//! that lists names (the folders of [`fs::FsSpool`], the embedded default: the protocol of
//! worker-watcher-tasks(5)), and one that hands out the next entry itself (a Redis stream with
//! a consumer group, [`crate::engine::redis`]: its delivery is the claim, and recovery reads
//! the consumer's own pending list). [`mem::MemSpool`] keeps everything in memory, for tests
//! of the loop. Ids are [`EntryId`]s, bytes that mean something only to their backend.
//!
//! The listener's interface is [`listener::ListenerSpool`], watcherctl's
//! [`control::ControlSpool`]; each has the folders' implementation ([`fs`]) and one in memory
//! ([`mem`]). Every path of the folders comes from [`layout::Layout`].

#[cfg(test)]
mod contract;
pub(crate) mod control;
pub mod error;
pub(crate) mod fs;
pub(crate) mod layout;
pub mod listener;
#[cfg(test)]
pub(crate) mod mem;
pub(crate) mod migrate;
pub(crate) mod read;
pub(crate) mod redis;
mod writer;

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use mio::{Registry, Token};
use serde_json::Value;

use crate::format::records::{DeadLetter, Heartbeat, Receipt, TaskResult};
use crate::format::task::{Invalid, Task};
pub use error::{Error, OpenError};
pub use layout::Layout;
pub use read::Writers;

/// A backend's id of a queued or claimed task: a file name in a folder, an entry of a stream.
/// Bytes, so that a file name that is not UTF-8 is kept exactly. Ids starting with `.` are
/// never handed out by a backend (see [`Claim::unqueued`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(Vec<u8>);

impl EntryId {
    pub fn new(bytes: impl Into<Vec<u8>>) -> EntryId {
        EntryId(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The id as text, for logs and records (invalid UTF-8 replaced).
    pub fn lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

impl From<&str> for EntryId {
    fn from(s: &str) -> EntryId {
        EntryId(s.as_bytes().to_vec())
    }
}

impl From<String> for EntryId {
    fn from(s: String) -> EntryId {
        EntryId(s.into_bytes())
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lossy())
    }
}

/// A queued task not yet claimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    pub arrived: SystemTime,
}

/// Something in the queue that cannot be a task, to be reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    pub id: EntryId,
    /// Why it is not a task (for the folders: "task files end in .json").
    pub why: &'static str,
}

/// A claimed task: only the claimant holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The backend's key of the claimed task (folders: its name in `.inflight/`; a stream: the
    /// entry delivered).
    pub key: EntryId,
    /// The id it was queued under (folders: the name the producer gave it).
    pub source: EntryId,
    /// A file holding the task as claimed, for the agent (WATCHER_TASK_FILE) and the claim
    /// receipt: the folder backend's claimed file itself. A backend that keeps tasks elsewhere
    /// may write one (under its runtime folder) or give none; the agent reads the task on its
    /// stdin either way.
    pub file: Option<PathBuf>,
}

impl Claim {
    pub fn source_lossy(&self) -> String {
        self.source.lossy().into_owned()
    }

    /// The claim of something that was never queued (a pipe line too long to keep), for its
    /// dead letter: it holds nothing, and its key starts with `.`, which no backend hands
    /// out, so releasing it releases nothing.
    pub fn unqueued(n: u64, source: &str) -> Claim {
        Claim { key: EntryId::from(format!(".unqueued-{n}")), source: EntryId::from(source), file: None }
    }
}

/// A claimed task read back.
#[derive(Debug)]
pub struct Loaded {
    pub task: Task,
    /// The time it was queued (its order in the queue).
    pub queued_at: SystemTime,
}

/// A claimed task that is not a valid task.
#[derive(Debug)]
pub struct Rejected {
    pub why: Invalid,
    /// The id a task that names none takes (for the folders: the file's name without
    /// `.json`), if it is a valid one; its result is written under it.
    pub fallback_id: Option<String>,
    /// The content, when it was a JSON object.
    pub doc: Option<Value>,
    /// The start of the content as text, when it was not JSON.
    pub preview: Option<String>,
    /// Whether the original must be kept beside the dead letter (its content is not in it).
    pub keep_original: bool,
    /// The content is not JSON, and may be a task still being written in place.
    pub unfinished: Option<Unfinished>,
}

/// What is known of a file that may still be being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unfinished {
    /// Its modification time, read after its content.
    pub modified: SystemTime,
    pub writers: Writers,
}

/// Something to make durable; staged during a loop turn, committed at its end.
// A handful are staged per turn; boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Op {
    /// The final result of a task; the claim is released once it is durable.
    Complete {
        claim: Claim,
        result: TaskResult,
    },
    /// A dead letter (and a failed result, when the task has a usable id).
    DeadLetter {
        claim: Claim,
        record: DeadLetter,
        result: Option<TaskResult>,
        keep_original: bool,
    },
    /// The task with its new state (attempts, history, retry time), kept claimed.
    SaveState {
        claim: Claim,
        task: Task,
        queued_at: SystemTime,
    },
    /// The task with its new state, then put back in the queue (recovery after a crash).
    Requeue {
        claim: Claim,
        task: Task,
        queued_at: SystemTime,
    },
    Receipt(Receipt),
    Heartbeat(Heartbeat),
    /// The worker's spend ledger (opaque to the spool; only the newest counts).
    Ledger(Vec<u8>),
}

/// Which kind of op an outcome is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Complete,
    DeadLetter,
    SaveState,
    Requeue,
    Receipt,
    Heartbeat,
    Ledger,
}

/// The outcome of one staged op.
#[derive(Debug)]
pub struct Done {
    pub kind: OpKind,
    /// The key of the op's claim, if it has one.
    pub key: Option<EntryId>,
    /// `None`: durable. A failed `Complete`, `DeadLetter`, `SaveState` or `Requeue` stays
    /// staged and is tried again at the next commit.
    pub error: Option<io::Error>,
}

/// A request to cancel a task (`watcherctl cancel`), as the backend delivers it: through the
/// worker's intake like an arrival (folders: a file in a folder the worker watches; a stream:
/// an entry of the worker's requests), never as a signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelRequest {
    /// The backend's key of the request, to drop it once acted on.
    pub key: EntryId,
    /// The task to cancel.
    pub task_id: String,
    /// Who asked (`USER@HOST`), for the result and the log; empty when not known.
    pub by: String,
}

/// What the arrival notifications said.
#[derive(Debug, Default)]
pub struct Intake {
    /// Ids that arrived in the queue, in order.
    pub arrivals: Vec<EntryId>,
    /// Requests to cancel a task that arrived.
    pub cancels: Vec<CancelRequest>,
    /// Task ids whose request to cancel is gone from the spool (another host of the worker
    /// acted on it): forgotten, so a task of that id queued again later runs.
    pub withdrawn: Vec<String>,
    /// What arrived but cannot be a task, to be reported.
    pub ignored: Vec<Ignored>,
    /// Notifications were lost: list the queue again.
    pub rescan: bool,
    /// A backend that claims by itself ([`Spool::claims_itself`]): tasks it claimed for the
    /// free slots it was told of, to load and start.
    pub claimed: Vec<Claim>,
    /// Tasks it took over from a host that died (their reclaim counted already in what
    /// `load` reads), to judge against MAX_RECLAIMS, then start.
    pub reclaimed: Vec<Claim>,
    /// Claims that are no longer this worker's (the entry was finished by another host that
    /// took it over): their agents are stopped and their outcomes discarded.
    pub gone: Vec<EntryId>,
}

/// Whether a backend can be used now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Its first connection is being made: where to.
    Connecting(String),
    /// Not yet (an engine not reachable): why, for STATUS= and the log.
    Waiting(String),
    /// Never as it is set up (an engine that could lose tasks): the one line naming the
    /// setting to change.
    Refused(String),
}

/// A listing of the queue.
#[derive(Debug, Default)]
pub struct Scan {
    /// Queued tasks, oldest first.
    pub entries: Vec<Entry>,
    /// What cannot be a task, to be reported.
    pub ignored: Vec<Ignored>,
    /// Every request to cancel a task not dropped yet (also those delivered before).
    pub cancels: Vec<CancelRequest>,
}

/// The spool interface of the worker loop.
///
/// The loop keeps the ids it knows as queued in arrival order, claims them one by one while it
/// has free slots, and stages every outcome as an [`Op`] that the backend makes durable in
/// groups. How each method maps to the two kinds of backend (folders: [`fs::FsSpool`]; the
/// Redis engine of [`crate::engine::redis`], through its I/O thread `RedisIo` and the scripts
/// of `ops::Queue`, docs/redis.md):
///
/// | method | folders | Redis stream, consumer group |
/// |---|---|---|
/// | `register` | inotify on the queue; the writer thread's waker | the `XREAD BLOCK` reader's waker (`token`) and `RedisIo`'s (`writes`) |
/// | `intake` | inotify events → names | entries the blocked `XREAD` saw (from the group's last-delivered-id) |
/// | `scan` | list the folder, oldest first | `XRANGE` after the group's last-delivered-id: entries not delivered yet |
/// | `leftovers` | `.inflight/` | own pending list: `Queue::recover("0", n, bump=true)` (each counts a reclaim) |
/// | `claim` | `rename(2)` into `.inflight/` | the `claim` script, `>`, count 1: the group's next entry, which may not be `wanted` |
/// | `load` | read and validate the file | the task's `doc` and `state` as delivered |
/// | `requeue`, `put_back` | rename back into the queue | `requeue` script |
/// | `discard` | remove the claimed file | nothing: `claim` drops entries whose result exists (`done`) |
/// | `result_exists`, `result_is_invalid`, `set_aside_result` | `results/` | `GET` of the result key |
/// | `submit` | write files atomically | `enqueue` script |
/// | cancel requests (`intake`, `scan`) | `.cancel/<id>.json`, watched | entries of a per-worker request stream, read with the queue's |
/// | `withdraw` | `rename(2)` of `<id>.json` into `.inflight/` | a script: the task's entry acknowledged and deleted while `phase` is `queued` |
/// | `drop_request` | remove the request file | `XACK`/`XDEL` of the request entry |
/// | `stage`/`commit` | the writer thread, group commit | one pipelined `RedisIo::Batch` per turn: `complete`, `dead_letter`, a state save while held, `requeue`, `heartbeat`, `spend` |
/// | `ledger` | `.spend.json` | the `spend` hash |
///
/// A backend over the network ([`redis::worker::RedisSpool`]) must not make the loop wait for
/// a round trip, so the loop drives it through the methods at the end, which the folders
/// leave at their defaults: it claims by itself for the free slots it is told of
/// ([`Spool::claims_itself`], [`Spool::claim_slots`]) and hands claims, reclaims and lost
/// claims out through [`Spool::intake`]; it keeps retries itself, on the engine's clock
/// ([`Spool::keeps_retries`]: [`Op::SaveState`] gives the task back until its time); it says
/// when it is not usable yet ([`Spool::readiness`]), when its own timers are due
/// ([`Spool::next_deadline`]: lease renewals ride on heartbeats, reclaims and promotions of due
/// retries on these), and what it has to say for the log ([`Spool::notes`]). Its synchronous
/// methods (`scan`, `claim`, `leftovers`, `submit`, `ledger`) wait for a round trip: only
/// start-up recovery and the pipe intake use them.
pub trait Spool {
    /// Registers the source of arrival notifications with the loop (`token`), and what tells
    /// the loop that written ops have outcomes to collect (`writes`).
    fn register(&mut self, registry: &Registry, token: Token, writes: Token) -> io::Result<()>;
    /// Drains arrival notifications.
    fn intake(&mut self, registry: &Registry, token: Token) -> io::Result<Intake>;
    /// Every queued task, oldest first.
    fn scan(&mut self) -> io::Result<Scan>;
    /// Tasks found claimed at start-up: left by a daemon that died.
    fn leftovers(&mut self) -> io::Result<Vec<Claim>>;
    /// Claims a queued task; `Ok(None)` when nothing is left to claim (`wanted` was taken or
    /// removed). A backend that lists names claims `wanted`. One that hands out entries in its
    /// own order (a stream) claims its next entry: another one when `wanted` went to another
    /// consumer, and the loop then forgets `wanted` and the claim's `source` as queued.
    fn claim(&mut self, wanted: &EntryId) -> io::Result<Option<Claim>>;
    /// Reads and validates a claimed task. (Rejections are rare; their size does not matter.)
    #[allow(clippy::result_large_err)]
    fn load(&mut self, claim: &Claim, max_bytes: u64, worker: &str) -> Result<Loaded, Rejected>;
    /// Whether a final result for `task_id` exists.
    fn result_exists(&self, task_id: &str) -> bool;
    /// Whether the result of `task_id` is the failed result of a file rejected as invalid,
    /// which a corrected task of that id replaces.
    fn result_is_invalid(&self, task_id: &str) -> bool;
    /// Moves the result of `task_id` aside, kept (a corrected task replaces an invalid one).
    fn set_aside_result(&mut self, task_id: &str) -> io::Result<()>;
    /// Puts a claimed task back in the queue as it is.
    fn requeue(&mut self, claim: &Claim) -> io::Result<()>;
    /// Puts a claimed task that may still be being written back in the queue, where its writer
    /// expects it; returns its id there. The arrival this move itself causes is not reported
    /// by [`Spool::intake`]; its writer finishing it later is. (Only a backend whose producers
    /// write in place has such tasks: [`Rejected::unfinished`].)
    fn put_back(&mut self, claim: &Claim) -> io::Result<EntryId>;
    /// Drops a claimed task whose result already exists.
    fn discard(&mut self, claim: &Claim) -> io::Result<()>;
    /// Takes the queued task `task_id` out of the queue to cancel it: a claim of it, as
    /// [`Spool::claim`] gives, whatever the backend's order; `Ok(None)` when no task of that id
    /// is queued. The loop then finishes it (a cancelled result) like any claimed task.
    fn withdraw(&mut self, task_id: &str) -> io::Result<Option<Claim>>;
    /// Drops a request to cancel a task, acted on (its cancelled result is durable) or moot
    /// (the task has a result, or is not known). Not durable: a request found again after a
    /// crash is moot by then, or acted on again.
    fn drop_request(&mut self, request: &CancelRequest) -> io::Result<()>;
    /// Queues tasks as a producer would (the pipe intake), durably: each `(task id, content)`
    /// under that id, or a free variant of it. Returns per task the id it was queued under.
    fn submit(&mut self, tasks: Vec<(String, Vec<u8>)>) -> Vec<io::Result<EntryId>>;
    fn stage(&mut self, op: Op);
    /// Returns the outcomes of ops written since the last call, and hands what is staged to
    /// be made durable (group commit). Never waits for the disk: outcomes of what it hands
    /// over come back from a later call, once the `writes` token of [`Spool::register`] fired.
    fn commit(&mut self) -> Vec<Done>;
    /// Like `commit`, but waits until every op staged or in flight is written or has failed
    /// (start-up recovery, the last heartbeat).
    fn commit_wait(&mut self) -> Vec<Done>;
    /// Whether any op is staged, being written, or waiting for a retry.
    fn busy(&self) -> bool;
    /// The spend ledger last saved with [`Op::Ledger`], if any.
    fn ledger(&self) -> io::Result<Option<Vec<u8>>>;
    /// Whether failed ops wait for a retry.
    fn has_pending(&self) -> bool;
    /// Why arrival notifications may miss tasks (say, "nfs": other hosts' writes are not
    /// seen), so the loop should rescan on a timer; `None` when they are reliable.
    fn notifications_unreliable(&self) -> Option<&'static str> {
        None
    }
    /// The folders of the spool that were found missing (removed under the daemon) and made
    /// again since the last call, to be reported.
    fn recreated(&mut self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Whether the backend can be used now (the folders always can).
    fn readiness(&self) -> Readiness {
        Readiness::Ready
    }
    /// Whether the backend claims by itself (a stream over the network): the loop then tells
    /// it the free slots ([`Spool::claim_slots`]) instead of listing and claiming ids, and
    /// takes its claims from [`Intake::claimed`].
    fn claims_itself(&self) -> bool {
        false
    }
    /// How many tasks the loop would start now (0 while it may start none).
    fn claim_slots(&mut self, _free: usize) {}
    /// Whether the backend keeps tasks waiting for a retry itself (until the time their
    /// state's `retry_at` gives, then back to the queue): the loop then lets go of a task
    /// once [`Op::SaveState`] is staged, instead of waiting for its time.
    fn keeps_retries(&self) -> bool {
        false
    }
    /// The tasks queued and not claimed, when the backend counts them itself.
    fn queued(&self) -> Option<usize> {
        None
    }
    /// When the backend's own timers are due: the loop then reads [`Spool::intake`].
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// What the backend has to say for the log since the last call.
    fn notes(&mut self) -> Vec<listener::Note> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
