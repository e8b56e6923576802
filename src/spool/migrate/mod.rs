//! Moving one worker's work between the folders and an engine (`watcherctl spool import W`,
//! `watcherctl spool export W`): its queued tasks with their saved state (attempts, history,
//! a retry's due time), the tasks a stopped worker keeps waiting for a retry, and its dead
//! letters with the originals kept beside them. Results stay where they are (the listener's
//! archive is the long-term record).
//!
//! Safe to run again: each record is written on the other side first (queued by the
//! idempotent `enqueue` script, or a file synced and renamed without replacing anything;
//! behind Sentinel, confirmed by a replica), and only then taken from its side (files moved
//! into `.imported/`, kept; engine records removed by one script). A record found on the
//! other side already is `Present` when it is the same task (an earlier run stopped half-way:
//! its move is finished now) and `Skipped` otherwise (left where it is, and reported). A
//! second run finds nothing to move.
//!
//! Refused while a worker runs on the side the work leaves: the worker's lock and a live
//! heartbeat on the folders, a live heartbeat of any host (and this host's lock) on the
//! engine.

mod engine;
mod files;

use std::io;

use serde_json::{Map, Value};

use crate::config::Paths;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::settings::Settings;
use crate::format::task::{Task, STATE_KEY};
use crate::sys::clock;
use engine::{Added, EngineSide, EngineTask};
use files::{Busy, Folders};

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum What {
    Task,
    DeadLetter,
}

/// What became of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written on the other side, and taken from this one.
    Moved,
    /// The other side had it already (an earlier run); taken from this one now.
    Present,
    /// Left where it was: the other side has something else of that id, or it is not a task.
    Skipped(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) what: What,
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
    /// A task with saved state (a failed attempt, waiting for its retry, a reclaim).
    pub(crate) with_state: bool,
}

/// Why a migration did not run (or stopped).
#[derive(Debug)]
pub(crate) enum Failure {
    /// A worker runs on the side the work leaves.
    Running(String),
    /// A setting (SPOOL, an unsafe engine).
    Config(String),
    Io(String),
}

impl From<Busy> for Failure {
    fn from(b: Busy) -> Failure {
        match b {
            Busy::Running(m) => Failure::Running(m),
            Busy::Io(m) => Failure::Io(m),
        }
    }
}

fn io_failure(doing: &str) -> impl Fn(io::Error) -> Failure + '_ {
    move |e| Failure::Io(format!("{doing}: {e}"))
}

fn open_engine(settings: &Settings, worker: &str) -> Result<EngineSide, Failure> {
    EngineSide::open(settings, worker).map_err(|e| match e {
        EngineError::Refused(line) => Failure::Config(format!("SPOOL: {line}")),
        other => Failure::Io(format!(
            "cannot reach the engine {}: {other}",
            crate::spool::redis::describe(settings)
        )),
    })
}

/// A JSON object.
type Object = Map<String, Value>;

/// A task's document and its `_watcher` state, apart.
fn split(bytes: &[u8]) -> Option<(Object, Option<Object>)> {
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(bytes) else { return None };
    let state = match doc.remove(STATE_KEY) {
        Some(Value::Object(s)) => Some(s),
        _ => None,
    };
    Some((doc, state))
}

/// Whether two task files are the same task (their state aside).
fn same_task(a: &[u8], b: &[u8]) -> bool {
    matches!((split(a), split(b)), (Some((x, _)), Some((y, _))) if x == y)
}

fn to_vec(m: Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

fn add_reclaims(state: &mut Map<String, Value>, n: u64) {
    if n > 0 {
        let before = state.get("reclaims").and_then(Value::as_u64).unwrap_or(0);
        state.insert("reclaims".into(), Value::from(before + n));
    }
}

/// Moves `worker`'s queue, retry state and dead letters from the folders to the engine.
pub(crate) fn import(paths: &Paths, settings: &Settings, worker: &str) -> Result<Vec<Item>, Failure> {
    let now = clock::now_f64();
    let folders = Folders::open(paths, worker, now)?;
    let mut engine = open_engine(settings, worker)?;
    engine.make_queue().map_err(io_failure("cannot make the worker's queue"))?;
    let mut items = Vec::new();
    let mut done = Vec::new();
    for rec in folders.tasks().map_err(io_failure("cannot read the queue"))? {
        let (item, take) = import_task(&mut engine, worker, &rec, now)?;
        if take {
            done.push(rec.path.clone());
        }
        items.push(item);
    }
    for rec in folders.dead_letters().map_err(io_failure("cannot read the dead letters"))? {
        let original = folders.original(&rec.stem);
        let at = engine
            .add_dead_letter(
                &rec.stem,
                &rec.bytes,
                original.as_ref().map(|(_, b)| b.as_slice()),
                rec.mtime_ms,
            )
            .map_err(io_failure("cannot add a dead letter"))?;
        let outcome = match at {
            Added::New => Outcome::Moved,
            Added::Present => Outcome::Present,
            Added::Other(what) => Outcome::Skipped(format!("the engine has {what} of that name")),
        };
        if !matches!(outcome, Outcome::Skipped(_)) {
            done.push(rec.path.clone());
            done.extend(original.map(|(p, _)| p));
        }
        items.push(Item { what: What::DeadLetter, name: rec.stem, outcome, with_state: false });
    }
    // Nothing leaves the folders before the engine (and a replica) has it.
    engine.replicated().map_err(io_failure("cannot confirm the writes"))?;
    for path in done {
        folders.set_aside(&path).map_err(io_failure(&format!("cannot move {} aside", path.display())))?;
    }
    Ok(items)
}

fn import_task(
    engine: &mut EngineSide,
    worker: &str,
    rec: &files::FileRecord,
    now: f64,
) -> Result<(Item, bool), Failure> {
    let task = match Task::parse(&rec.bytes, &rec.stem, worker) {
        Ok(t) => t,
        Err(why) => {
            let outcome =
                Outcome::Skipped(format!("not a valid task ({why}); left for the worker to dead-letter"));
            return Ok((
                Item { what: What::Task, name: rec.stem.clone(), outcome, with_state: false },
                false,
            ));
        }
    };
    // A task that parsed is an object.
    let (doc, state) = split(&rec.bytes).unwrap_or_default();
    let mut state = state.unwrap_or_default();
    // Left in .inflight/ while running by a worker that died: a reclaim, as the worker counts.
    let in_flight = rec.path.parent().is_some_and(|d| d.ends_with(".inflight"));
    if in_flight && !task.state.retry_at.is_some_and(|t| t > now) {
        add_reclaims(&mut state, 1);
    }
    let with_state = !state.is_empty();
    let doc = to_vec(doc);
    let state_bytes = with_state.then(|| to_vec(state));
    let queued =
        engine.enqueue(&task.id, &doc, state_bytes.as_deref()).map_err(io_failure("cannot queue"))?;
    let outcome = if queued {
        Outcome::Moved
    } else {
        match engine.doc(&task.id).map_err(io_failure("cannot read"))? {
            Some(there) if same_task(&there, &doc) => Outcome::Present,
            Some(_) => Outcome::Skipped("the engine holds another task of that id".into()),
            None => Outcome::Skipped("the engine has a result of that id".into()),
        }
    };
    let take = !matches!(outcome, Outcome::Skipped(_));
    Ok((Item { what: What::Task, name: task.id, outcome, with_state }, take))
}

/// Moves `worker`'s queue, retry state and dead letters from the engine to the folders.
pub(crate) fn export(paths: &Paths, settings: &Settings, worker: &str) -> Result<Vec<Item>, Failure> {
    let now = clock::now_f64();
    // This host's engine worker holds this lock; other hosts' show by their heartbeats.
    let _lock = files::lock(&paths.engine_lock_file(worker), true, worker)?;
    let mut engine = open_engine(settings, worker)?;
    let live = engine.live_hosts(now).map_err(io_failure("cannot read the heartbeats"))?;
    if !live.is_empty() {
        return Err(Failure::Running(format!(
            "worker {worker:?} is running on {} (a live heartbeat on {}); stop it first",
            live.join(", "),
            engine.describe()
        )));
    }
    let folders = Folders::unlocked(paths, worker);
    let server_ms = engine.time_ms().map_err(io_failure("cannot read the engine's clock"))?;
    let mut items = Vec::new();
    for t in engine.tasks().map_err(io_failure("cannot read the queue"))? {
        items.push(export_task(&mut engine, &folders, &t, server_ms, now)?);
    }
    for l in engine.dead_letters().map_err(io_failure("cannot read the dead letters"))? {
        let outcome = match folders.dead_letter(&l.name) {
            Some(b) if b == l.bytes => Outcome::Present,
            Some(_) => Outcome::Skipped(format!(
                "{} holds another dead letter of that name",
                paths.dlq(worker).display()
            )),
            None => {
                folders
                    .add_dead_letter(&l.name, l.bytes.clone(), l.original.clone())
                    .map_err(io_failure("cannot write a dead letter"))?;
                Outcome::Moved
            }
        };
        if !matches!(outcome, Outcome::Skipped(_)) {
            engine.drop_dead_letter(&l.name).map_err(io_failure("cannot remove a dead letter"))?;
        }
        items.push(Item { what: What::DeadLetter, name: l.name, outcome, with_state: false });
    }
    Ok(items)
}

/// A task as a file: its document with its state under `_watcher` (the engine's reclaims
/// added, a retry's due time on this host's clock).
fn task_file(t: &EngineTask, server_ms: i64, now: f64) -> Vec<u8> {
    let Some((mut doc, inner)) = split(&t.doc) else { return t.doc.clone() };
    let mut state = match t.state.as_deref().map(serde_json::from_slice::<Value>) {
        Some(Ok(Value::Object(s))) => s,
        _ => inner.unwrap_or_default(),
    };
    // Held by a host that is gone: it was running, a reclaim.
    add_reclaims(&mut state, t.reclaims + u64::from(t.phase == "claimed"));
    if let Some(due) = t.due_ms {
        let wait = (due - server_ms).max(0) as f64 / 1000.0;
        state.insert("retry_at".into(), Value::from(now + wait));
    }
    if !state.is_empty() {
        doc.insert(STATE_KEY.into(), Value::Object(state));
    }
    to_vec(doc)
}

fn export_task(
    engine: &mut EngineSide,
    folders: &Folders,
    t: &EngineTask,
    server_ms: i64,
    now: f64,
) -> Result<Item, Failure> {
    let bytes = task_file(t, server_ms, now);
    let with_state = split(&bytes).is_some_and(|(_, s)| s.is_some());
    let outcome = match folders.task(&t.id) {
        Some(there) if same_task(&there, &bytes) => Outcome::Present,
        Some(_) => Outcome::Skipped("the queue holds another task of that id".into()),
        None if folders.has_result(&t.id) => Outcome::Skipped("a result of that id is in the folders".into()),
        None => match folders.add_task(&t.id, bytes) {
            Ok(_) => Outcome::Moved,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Outcome::Skipped("a task of that id was queued meanwhile".into())
            }
            Err(e) => return Err(Failure::Io(format!("cannot write task {}: {e}", t.id))),
        },
    };
    if !matches!(outcome, Outcome::Skipped(_)) && !engine.take(t).map_err(io_failure("cannot remove"))? {
        return Ok(Item {
            what: What::Task,
            name: t.id.clone(),
            outcome: Outcome::Skipped(
                "it changed on the engine meanwhile (a worker runs?); the file is written".into(),
            ),
            with_state,
        });
    }
    Ok(Item { what: What::Task, name: t.id.clone(), outcome, with_state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_task_whatever_its_state() {
        let a = br#"{"task_id":"t","description":"d","_watcher":{"attempts":1}}"#;
        let b = br#"{"description":"d","task_id":"t"}"#;
        assert!(same_task(a, b));
        assert!(!same_task(a, br#"{"task_id":"t","description":"e"}"#));
        assert!(!same_task(b"not json", b"not json"));
    }

    #[test]
    fn a_task_file_carries_the_engine_state_and_the_wait() {
        let t = EngineTask {
            id: "t".into(),
            doc: br#"{"task_id":"t","description":"d"}"#.to_vec(),
            state: Some(br#"{"attempts":2,"reclaims":1,"history":[]}"#.to_vec()),
            phase: "delayed".into(),
            entry: "1-0".into(),
            reclaims: 2,
            due_ms: Some(10_500),
        };
        let v: Value = serde_json::from_slice(&task_file(&t, 10_000, 100.0)).expect("json");
        assert_eq!(v["_watcher"]["attempts"], 2);
        assert_eq!(v["_watcher"]["reclaims"], 3);
        assert_eq!(v["_watcher"]["retry_at"], 100.5);
        let t = EngineTask { state: None, phase: "claimed".into(), reclaims: 0, due_ms: None, ..t };
        let v: Value = serde_json::from_slice(&task_file(&t, 0, 0.0)).expect("json");
        assert_eq!(v["_watcher"]["reclaims"], 1, "held by a host that is gone: a reclaim");
    }
}
