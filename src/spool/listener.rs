//! What orchestrator-listener needs of a spool, whatever holds it: the results not taken yet
//! since its last commit, the workers' heartbeats and word that one was written, and a place
//! to write its events; its own state committed together with what it took.
//!
//! [`ListenerSpool`] is that interface, shaped as a poll loop wants it: a readiness source
//! registered once ([`ListenerSpool::register`]), then per turn a drain of what changed and
//! a batch of results ([`ListenerSpool::results`]), and a commit. [`super::fs::listener`] is
//! the folders (a cursor over the result files' modification times, and a log of what was
//! taken); [`super::mem::Memory`] keeps everything in memory, for tests. A stream engine fits
//! the same calls: results read from its `results` stream by a consumer group (taken = read,
//! committed = acknowledged, with the listener's state in the same transaction), heartbeats
//! from keys, events added to its `events` stream.
//!
//! Exactly once: results handed out are taken in memory; [`ListenerSpool::commit`], called
//! once their events are written, makes that durable together with the listener's state. A
//! crash before it hands the same results out again, and the listener writes the same events
//! again under the same ids.

use std::io;
use std::time::{Duration, Instant};

use mio::{Registry, Token};

use super::error::{Error, OpenError};
use crate::format::summary::ResultReading;

/// A result handed to the listener.
#[derive(Debug)]
pub struct Delivered {
    pub worker: String,
    /// When it was written, in nanoseconds since the epoch: the time of its event, and part of
    /// the event's identity (the same result gives the same event id after a restart).
    pub written_ns: i64,
    /// Where it is (a file, a stream entry), for the event and the log.
    pub at: String,
    pub reading: ResultReading,
    /// To be announced; `false`: history found when the worker was first seen, older than
    /// the backfill, only counted.
    pub announce: bool,
    /// Taken before (its file touched or edited since): neither counted nor announced again.
    pub again: bool,
}

/// The host name of a spool of one host (the folders, the memory): its series carry no
/// `host` label, as before there were hosts.
pub const ONE_HOST: &str = "";

/// A worker's heartbeat as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredHeartbeat {
    Missing,
    Found(Vec<u8>),
    /// It exists but cannot be read (not a regular file, too large, an I/O error): why.
    Unreadable(String),
}

/// What changed since the last drain.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notices {
    /// Workers whose heartbeat was just written (followed or not).
    pub heartbeats: Vec<String>,
    /// Workers that showed up (a queue or a result folder) and are not followed.
    pub appeared: Vec<String>,
    /// Word may have been lost: every heartbeat is to be read again, and workers looked for.
    pub rescan: bool,
}

/// Results known and not taken, and listings still to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub results: usize,
    /// Workers whose results are still to be listed.
    pub listings: usize,
}

impl Backlog {
    pub fn is_empty(self) -> bool {
        self.results == 0 && self.listings == 0
    }
}

/// How loud a [`Note`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loudness {
    Info,
    Warn,
    /// An error of an operation the backend retries: logged when new, not at every retry.
    Retried,
    Error,
}

/// Something the backend did or met on its own (a folder made again, a listing that failed
/// and is retried), for the listener's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub loudness: Loudness,
    pub message: &'static str,
    pub fields: Vec<(&'static str, String)>,
}

/// The listener's state as last committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// Where it is, for messages.
    pub at: String,
    pub bytes: Vec<u8>,
}

/// Why a commit did not happen.
#[derive(Debug)]
pub enum CommitError {
    /// It failed; nothing of it counts. Try again later.
    Failed(Error),
    /// Another listener serves the spool now: this one must stop.
    Superseded(String),
}

/// An event to write: its id, and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    pub json: Vec<u8>,
}

/// orchestrator-listener's interface to a spool.
pub trait ListenerSpool {
    /// The listener's state as last committed; `None`: there is none (a first start).
    fn load(&mut self) -> Result<Option<Saved>, OpenError>;
    /// Sets up what the backend watches; `discover`: also where new workers show up.
    fn start(&mut self, discover: bool) -> Result<(), OpenError>;
    /// Registers the source of change notifications with the loop.
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()>;
    /// Every worker the spool has a trace of (a queue, results, a heartbeat).
    fn workers(&mut self) -> Vec<String>;
    /// Follows the results of `worker`; `named`: it is named in WORKERS, so what it needs is
    /// made if missing.
    fn follow(&mut self, worker: &str, named: bool);
    /// Everything is to be looked at again (word was lost): watches set, results listed.
    fn rescan(&mut self);
    /// Before READY: what can be known cheaply of what is new (the folders: which result
    /// folders have not changed at all).
    fn prepare(&mut self);
    /// What changed since the last call (the registered token fired, or not).
    fn drain(&mut self) -> Notices;
    /// Up to `max` results not taken yet, a few from each worker in turn, oldest first for
    /// each; they count as taken from now on (durably at the next commit). `backfill`: a
    /// worker seen for the first time has its results older than this only counted.
    fn results(&mut self, max: usize, backfill: Duration) -> Vec<Delivered>;
    fn backlog(&self) -> Backlog;
    /// Every host's heartbeat of `worker`, the freshest first (the one written last); empty:
    /// it has none. An engine shared by hosts names each (its SPOOL_CONSUMER); a spool of one
    /// host (the folders, the memory) gives at most one, under the empty name [`ONE_HOST`].
    fn heartbeats(&mut self, worker: &str) -> Vec<(String, StoredHeartbeat)>;
    /// The freshest heartbeat of `worker`.
    fn heartbeat(&mut self, worker: &str) -> StoredHeartbeat {
        self.heartbeats(worker).into_iter().next().map_or(StoredHeartbeat::Missing, |(_, b)| b)
    }
    /// Writes events durably, in order; the outcome of each.
    fn write_events(&mut self, events: &[Outgoing]) -> Vec<Result<(), Error>>;
    /// Where the event `id` is (for notify commands: WATCHER_EVENT_FILE).
    fn event_at(&self, id: &str) -> String;
    /// Where the listener's state is kept (for messages).
    fn state_at(&self) -> String;
    /// Whether the backend has changes of its own to commit (results taken, seals).
    fn dirty(&self) -> bool;
    /// Makes the results taken so far, and the listener's `state`, durable together.
    fn commit(&mut self, state: serde_json::Value) -> Result<(), CommitError>;
    /// When [`ListenerSpool::tick`] has something to do. `settle`: nothing waits to be
    /// written, so quiet folders may be sealed.
    fn next_deadline(&self, settle: bool) -> Option<Instant>;
    /// Timed work: retries of what failed, and (with `settle`) seals.
    fn tick(&mut self, now: Instant, settle: bool);
    /// What the backend has to say for the log since the last call.
    fn notes(&mut self) -> Vec<Note>;
}
