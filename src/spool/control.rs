//! What watcherctl needs of a spool, whatever holds it: queue a task, read a result and wait
//! for one, the workers' heartbeats, the dead letters, the listener's events.
//!
//! [`ControlSpool`] is that interface. [`super::fs::control::FsControl`] is the folders of
//! worker-watcher-tasks(5); [`super::mem::Memory`] keeps everything in memory, for tests;
//! an engine (Redis: `XADD` to a worker's stream, its results in keys, `P:events` read with
//! `XREAD`) fits the same calls. watcherctl keeps the commands, their output and their exit
//! statuses; a backend only says what is where, and names it ([`Place`]) in messages.
//!
//! `watcherctl tasks W` lists every task of a worker that has no result ([`ControlSpool::tasks`]:
//! rows of [`Listed`], whose [`Pending`] the command refines with the task's saved state, its
//! last receipt and the worker's heartbeat into running, waiting, held), and `watcherctl cancel
//! W ID` asks the worker to cancel one ([`ControlSpool::request_cancel`]): a request the worker's
//! own backend delivers to it, never a signal, so it works across hosts.

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use serde_json::Value;

use super::error::Error;
use crate::format::records::Receipt;
use crate::format::task::State;

/// Where a task that has no result yet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Waiting in the worker's queue.
    Queued,
    /// Claimed by the worker: running, or waiting for a retry.
    InFlight,
}

impl Pending {
    /// The words watcherctl says it with ("a task is already queued", "is in flight").
    pub fn as_str(self) -> &'static str {
        match self {
            Pending::Queued => "queued",
            Pending::InFlight => "in flight",
        }
    }
}

/// A task of a worker that has no result yet, as `watcherctl tasks` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// Its task id (a queued task: the id it was queued under).
    pub id: String,
    pub pending: Pending,
    /// When it was queued: the listing's order.
    pub queued_at: SystemTime,
    /// A claimed task's state as the worker last saved it (`_watcher`); `None` for a queued
    /// task (not read: a queue may be long) and a claimed one never saved.
    pub state: Option<State>,
    /// The claim receipt of its last start, if any (the running attempt, its agent's pid, when
    /// it started, its session).
    pub receipt: Option<Receipt>,
    /// A request to cancel it waits for its worker.
    pub cancel_requested: bool,
}

/// What a backend has of one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Known {
    pub queue: bool,
    pub heartbeat: bool,
    pub results: bool,
    pub dead_letters: bool,
}

impl Known {
    /// A worker takes tasks when it has a queue or a heartbeat: a typo matches neither.
    pub fn accepts_tasks(self) -> bool {
        self.queue || self.heartbeat
    }

    /// Anything at all of this worker.
    pub fn any(self) -> bool {
        self.accepts_tasks() || self.results || self.dead_letters
    }
}

/// A place of the spool that messages name (a path, a key).
#[derive(Clone, Copy, Debug)]
pub enum Place<'a> {
    /// The spool itself (`no workers under …`).
    Root,
    Queue(&'a str),
    Heartbeat(&'a str),
    /// A worker's result of a task.
    Result(&'a str, &'a str),
    Events,
}

/// One record read back: its name (a dead letter's: the task id, or `<id>.<ms>`, or
/// `invalid-<file>`), where it is, and its bytes as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub name: String,
    pub at: String,
    pub bytes: Vec<u8>,
}

/// How queueing a task went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued, durably, at this place.
    At(String),
    /// A task of that id is queued already; nothing was changed.
    Taken,
}

/// One event of the listener.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Its id: names sort by the time of what they report.
    pub name: String,
    /// When it was written.
    pub written: SystemTime,
    pub value: Value,
}

/// Events read by an [`EventFeed`].
#[derive(Debug, Default)]
pub struct EventsRead {
    /// Not returned before, oldest first.
    pub events: Vec<StoredEvent>,
    /// Events that could not be read, each said once.
    pub unreadable: Vec<Error>,
}

/// Waits for a change of what it watches.
pub trait Waiter {
    /// Blocks until something may have changed (`true`), or `deadline` passes (`false`;
    /// `None`: never).
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<bool>;
}

/// The listener's events, read in order, each once.
pub trait EventFeed {
    /// The events not returned before, oldest first; `wait`: block until there may be new
    /// ones first (it may still return none).
    fn next(&mut self, wait: bool) -> Result<EventsRead, Error>;
}

/// watcherctl's interface to a spool.
pub trait ControlSpool {
    /// How messages name `place`.
    fn locate(&self, place: Place) -> String;
    /// Every worker with a heartbeat or a queue, by name.
    fn workers(&self) -> BTreeSet<String>;
    fn known(&self, worker: &str) -> Known;
    /// Makes the queue of a worker not known yet (`submit --create`).
    fn create_queue(&mut self, worker: &str) -> Result<(), Error>;
    /// Where the task `id` of `worker` waits, if it is queued or claimed under its own id.
    fn pending(&self, worker: &str, id: &str) -> Option<Pending>;
    /// How many tasks wait in the queue of `worker` (for a worker whose heartbeat says none).
    fn queued(&self, worker: &str) -> usize;
    /// Every task of `worker` that has no result yet, queued and claimed, oldest first.
    fn tasks(&self, worker: &str) -> Result<Vec<Listed>, Error>;
    /// Asks `worker` to cancel task `id`, durably, through what its backend delivers to it
    /// (folders: `tasks/W/.cancel/<id>.json`, which the worker watches). `by` names who asked.
    /// Asking again is the same request.
    fn request_cancel(&mut self, worker: &str, id: &str, by: &str) -> Result<(), Error>;
    /// Queues the task `id` atomically: never half of it, never over another of that id.
    fn enqueue(&mut self, worker: &str, id: &str, task: Vec<u8>) -> Result<Queued, Error>;
    /// The worker's named pipe, for a backend that has one (`submit --pipe`).
    fn pipe(&self, worker: &str) -> Option<PathBuf>;
    /// The result of task `id`, as it is; `None`: there is none.
    fn result(&self, worker: &str, id: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Whether there is anything where the result of `id` goes, readable or not.
    fn result_exists(&self, worker: &str, id: &str) -> bool;
    /// Moves the result of `id` aside, kept (a retried or corrected task replaces it).
    fn set_aside_result(&mut self, worker: &str, id: &str) -> Result<(), Error>;
    /// Starts watching the results of `worker`: a result written after this call wakes the
    /// waiter (watch first, then look, and nothing falls between).
    fn watch_results(&self, worker: &str) -> Result<Box<dyn Waiter>, Error>;
    /// The heartbeat of `worker`, as it is; `None`: there is none.
    fn heartbeat(&self, worker: &str) -> Result<Option<Vec<u8>>, Error>;
    /// The heartbeat of each host of `worker` (name, bytes), the freshest first; a backend of
    /// one host gives its one heartbeat with an empty name.
    fn heartbeats(&self, worker: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        Ok(self.heartbeat(worker)?.map(|b| (String::new(), b)).into_iter().collect())
    }
    /// The dead letters of `worker`, in no order.
    fn dead_letters(&self, worker: &str) -> Result<Vec<Stored>, Error>;
    /// The task file a dead letter kept beside it (one rejected unread, or half-written),
    /// as it is now, at most `max` bytes; `None`: it kept none.
    fn original(&self, worker: &str, letter: &Stored, max: u64) -> Result<Option<Vec<u8>>, Error>;
    /// Removes the original a dead letter kept, if any; it was queued again.
    fn drop_original(&mut self, worker: &str, letter: &Stored);
    /// Moves a dead letter aside, kept as the record of an earlier failure (it was retried).
    fn retire(&mut self, worker: &str, letter: &Stored) -> Result<(), Error>;
    /// Removes dead letters and the originals they kept, durably.
    fn purge(&mut self, worker: &str, letters: &[Stored]) -> Result<(), Error>;
    /// The listener's events; `follow`: the feed can wait for more, and none written from
    /// this call on is missed.
    fn events(&self, follow: bool) -> Result<Box<dyn EventFeed>, Error>;
}
