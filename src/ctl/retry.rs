//! `watcherctl dlq retry`: a dead-lettered task goes back in its worker's queue with a fresh
//! attempt count (`_watcher.attempts`, `reclaims` and `retry_at` reset) and its failure
//! history kept.
//!
//! The worker rejects a task whose result exists (a duplicate), so the failed result is moved
//! aside first. The steps, each durable before the next, and why a crash between any two is
//! mended by running the same command again:
//! 1. the failed result → `results/<worker>/.retried/<id>.<ms>.json`
//!    (crash now: no result, nothing queued, dead letter still listed: a retry queues it);
//! 2. the task → `tasks/<worker>/<id>.json`, by a synced temp file and a rename that never
//!    replaces (crash now: the task is queued or has run again; a retry sees that and only
//!    archives the dead letter — a result newer than the dead letter means it ran again);
//! 3. the dead letter → `dlq/<worker>/.retried/<name>.<ms>.json`, kept as the record of the
//!    earlier failure.
//!
//! A letter of reason `invalid` is retried from what its task is now: the original file kept
//! in `.rejected/` (a file taken half-written may have been finished by its writer since), or
//! the object the letter holds, checked as the worker checks it.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::args::DlqPick;
use super::dlq::{pick, Letter};
use super::exit::{CtlError, CtlResult, OK, REFUSED};
use super::folders::{self, Spool};
use super::output::print;
use crate::format::records::{DeadLetter, COMPLETED, MAX_RECORD_BYTES, RETRIED_DIR};
use crate::format::task::{is_valid_id, State, Task, STATE_KEY};
use crate::spool::read;
use crate::sys::durable::{self, Publish};

pub fn retry(spool: &Spool, p: &DlqPick, max_task_bytes: u64) -> CtlResult {
    let letters = pick(spool, p)?;
    let mut refused = Vec::new();
    for l in &letters {
        match retry_one(spool, &p.worker, l, max_task_bytes) {
            Ok(done) => print(&format!("{done}\n"))?,
            Err(e) if e.code == REFUSED && p.all => {
                eprintln!("watcherctl: {e}");
                refused.push(l.name.clone());
            }
            Err(e) => return Err(e),
        }
    }
    if !refused.is_empty() {
        return Err(CtlError::new(REFUSED, format!("not retried: {}", refused.join(", "))));
    }
    Ok(OK)
}

fn refuse(l: &Letter, why: impl std::fmt::Display) -> CtlError {
    CtlError::new(REFUSED, format!("{} not retried: {why}", l.name))
}

/// Retries one dead letter; returns what was done.
fn retry_one(spool: &Spool, worker: &str, l: &Letter, max_task_bytes: u64) -> Result<String, CtlError> {
    let dl: DeadLetter =
        serde_json::from_slice(&l.bytes).map_err(|e| refuse(l, format!("not a dead letter: {e}")))?;
    let Some(id) = dl.task_id.clone().filter(|id| is_valid_id(id)) else {
        return Err(refuse(l, "it has no task id; fix the file and submit it again"));
    };
    let (mut doc, original) = match (dl.reason.as_str(), dl.task.clone()) {
        ("invalid", _) => corrected(spool, worker, l, &dl, &id, max_task_bytes)?,
        (_, Some(Value::Object(doc))) => (doc, None),
        _ => return Err(refuse(l, "it does not hold its task")),
    };
    let result_path = spool.result_file(worker, &id);
    let result =
        folders::read(&result_path, MAX_RECORD_BYTES)?.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let finished = result.as_ref().and_then(|r| r.get("finished_at")).and_then(Value::as_str).unwrap_or("");
    // Both are written by the same clock format, so the text order is the time order.
    if result.is_some() && finished > dl.dead_lettered_at.as_str() {
        archive(&spool.dlq(worker), &l.path, &l.name)?;
        return Ok(format!("{}: task {id} already ran again since; dead letter archived", l.name));
    }
    if let Some(where_) = spool.pending(worker, &id) {
        archive(&spool.dlq(worker), &l.path, &l.name)?;
        return Ok(format!("{}: task {id} is already {where_} again; dead letter archived", l.name));
    }
    if result.as_ref().and_then(|r| r.get("status")).and_then(Value::as_str) == Some(COMPLETED) {
        return Err(refuse(l, format!("task {id} has a completed result")));
    }
    let state = State { history: dl.history.clone(), ..State::default() };
    let state = serde_json::to_value(&state).map_err(|e| refuse(l, e))?;
    doc.insert(STATE_KEY.into(), state);
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(doc)).map_err(|e| refuse(l, e))?;
    bytes.push(b'\n');
    if folders::exists(&result_path) {
        archive(&spool.results(worker), &result_path, &id)?;
    }
    let queue = spool.queue(worker);
    folders::create_dir(&queue)
        .map_err(|e| CtlError::io(format!("cannot create {}", queue.display()), &e))?;
    let how = Publish { temp_prefix: ".watcherctl-", alternative: None, owner: folders::owner_for(&queue) };
    match durable::publish(&queue, vec![(format!("{id}.json").into(), bytes)], &how).pop() {
        Some(Ok(_)) => {}
        Some(Err(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(refuse(l, format!("a task {id} was queued meanwhile")));
        }
        Some(Err(e)) => return Err(CtlError::io(format!("cannot queue {id} in {}", queue.display()), &e)),
        None => {}
    }
    archive(&spool.dlq(worker), &l.path, &l.name)?;
    if let Some(path) = original {
        // Its content is queued now; the copy kept beside the dead letter is done with.
        let _ = fs::remove_file(path);
    }
    Ok(format!("{}: task {id} queued again (its history of {} failure(s) kept)", l.name, dl.history.len()))
}

/// The task of a dead letter rejected as invalid, as it is now, checked as the worker checks
/// it: its original file kept in the worker's `.rejected/` folder (whose writer may have
/// finished it since it was read half-written), else the object the letter holds. Returns
/// it, and the original file it came from.
fn corrected(
    spool: &Spool,
    worker: &str,
    l: &Letter,
    dl: &DeadLetter,
    id: &str,
    max: u64,
) -> Result<(Map<String, Value>, Option<PathBuf>), CtlError> {
    let rejected = spool.queue(worker).join(".rejected");
    let original = dl.original_file.as_deref().map(PathBuf::from).filter(|p| p.parent() == Some(&rejected));
    let bytes = match (&original, &dl.task) {
        (Some(path), _) => read::read(path, max)
            .map_err(|e| refuse(l, format!("cannot read its original file {}: {e}", path.display())))?,
        (None, Some(task)) => serde_json::to_vec(task).map_err(|e| refuse(l, e))?,
        (None, None) => return Err(refuse(l, "it does not hold its task")),
    };
    let stem = dl.source_file.strip_suffix(".json").unwrap_or(&dl.source_file);
    let task = Task::parse(&bytes, stem, worker).map_err(|why| {
        refuse(l, format!("it was rejected as invalid and still is: {why}; fix the task and submit it again"))
    })?;
    if task.id != id {
        return Err(refuse(l, format!("its task_id is {:?} now; submit it as a new task", task.id)));
    }
    Ok((task.doc, original))
}

/// Moves `path` into `dir/.retried/` as `<stem>.<epoch ms>.json`, durably.
pub(super) fn archive(dir: &Path, path: &Path, stem: &str) -> Result<(), CtlError> {
    let to_dir = dir.join(RETRIED_DIR);
    folders::create_dir(&to_dir)
        .map_err(|e| CtlError::io(format!("cannot create {}", to_dir.display()), &e))?;
    let ms = (crate::sys::clock::now_f64() * 1000.0) as u64;
    let to = to_dir.join(format!("{stem}.{ms}.json"));
    let moved = durable::rename_noreplace(path, &to)
        .and_then(|()| durable::sync_dir(&to_dir))
        .and_then(|()| durable::sync_dir(dir));
    match moved {
        Ok(()) => Ok(()),
        Err(e) => Err(CtlError::io(format!("cannot move {} to {}", path.display(), to.display()), &e)),
    }
}
