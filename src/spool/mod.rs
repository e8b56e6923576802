//! The spool: where tasks wait, how one is claimed, and where outcomes are made durable.
//!
//! The daemon's loop, runner and breaker speak only to the [`Spool`] trait, so a second
//! backend (Redis Streams with consumer groups: a claim is XREADGROUP, recovery XAUTOCLAIM)
//! fits without touching them. [`fs::FsSpool`] is the embedded default: the folder protocol
//! of worker-watcher-tasks(5).
//!
//! The listener's interface is [`listener::ListenerSpool`], watcherctl's
//! [`control::ControlSpool`]; each has the folders' implementation ([`fs`]) and one in memory
//! ([`mem`]). Every path of the folders comes from [`layout::Layout`].

pub mod control;
pub mod error;
pub mod fs;
pub mod layout;
pub mod listener;
pub mod mem;
pub(crate) mod read;
mod writer;

use std::ffi::{OsStr, OsString};
use std::io;
use std::time::SystemTime;

use mio::{Registry, Token};
use serde_json::Value;

use crate::format::records::{DeadLetter, Heartbeat, Receipt, TaskResult};
use crate::format::task::{Invalid, Task};
pub use error::{Error, OpenError};
pub use layout::Layout;
pub use read::Writers;

/// A queued task not yet claimed, known by its name in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub arrived: SystemTime,
}

/// A claimed task: only the claimant holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The backend's key of the claimed task (for the folders: its name in `.inflight/`).
    pub key: OsString,
    /// The name the producer gave it.
    pub source: OsString,
}

impl Claim {
    pub fn source_lossy(&self) -> String {
        self.source.to_string_lossy().into_owned()
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
    pub claim: Option<Claim>,
    /// `None`: durable. A failed `Complete`, `DeadLetter`, `SaveState` or `Requeue` stays
    /// staged and is tried again at the next commit.
    pub error: Option<io::Error>,
}

/// What the change notifications said.
#[derive(Debug, Default)]
pub struct Intake {
    /// Queue names that arrived, in order.
    pub arrivals: Vec<OsString>,
    /// Names that arrived but cannot be tasks, to be reported.
    pub ignored: Vec<OsString>,
    /// Notifications were lost: list the queue again.
    pub rescan: bool,
}

/// A listing of the queue.
#[derive(Debug, Default)]
pub struct Scan {
    /// Queued tasks, oldest first.
    pub entries: Vec<Entry>,
    /// Names that cannot be tasks, to be reported.
    pub ignored: Vec<OsString>,
}

/// The spool interface of the worker loop.
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
    /// Claims a queued task; `Ok(None)` when it is gone (taken or removed).
    fn claim(&mut self, name: &OsStr) -> io::Result<Option<Claim>>;
    /// Reads and validates a claimed task. (Rejections are rare; their size does not matter.)
    #[allow(clippy::result_large_err)]
    fn load(&mut self, claim: &Claim, max_bytes: u64, worker: &str) -> Result<Loaded, Rejected>;
    /// A path the agent may read the claimed task from (WATCHER_TASK_FILE), if any.
    fn task_path(&self, claim: &Claim) -> Option<std::path::PathBuf>;
    /// Whether a final result for `task_id` exists.
    fn result_exists(&self, task_id: &str) -> bool;
    /// Whether the result of `task_id` is the failed result of a file rejected as invalid,
    /// which a corrected task of that id replaces.
    fn result_is_invalid(&self, task_id: &str) -> bool;
    /// Moves the result of `task_id` aside, kept (a corrected task replaces an invalid one).
    fn set_aside_result(&mut self, task_id: &str) -> io::Result<()>;
    /// Puts a claimed task back in the queue as it is.
    fn requeue(&mut self, claim: &Claim) -> io::Result<()>;
    /// Puts a claimed file that may still be being written back in the queue, where its
    /// writer expects it; returns its name there. The arrival this move itself causes is not
    /// reported by [`Spool::intake`]; its writer closing it later is.
    fn put_back(&mut self, claim: &Claim) -> io::Result<OsString>;
    /// Drops a claimed task whose result already exists.
    fn discard(&mut self, claim: &Claim) -> io::Result<()>;
    /// Queues tasks as a producer would (the pipe intake): each under its name, or a free
    /// variant of it, durably. Returns per task the name it was queued under.
    fn submit(&mut self, tasks: Vec<(OsString, Vec<u8>)>) -> Vec<io::Result<OsString>>;
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
    fn recreated(&mut self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests;
