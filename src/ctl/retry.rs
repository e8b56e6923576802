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
//!
//! The steps are the backend's ([`ControlSpool`]); the folders' are above.

use serde_json::{Map, Value};

use super::args::DlqPick;
use super::dlq::{pick, Letter};
use super::exit::{CtlError, CtlResult, OK, REFUSED};
use super::output::print;
use crate::format::records::{DeadLetter, COMPLETED};
use crate::format::task::{is_valid_id, State, Task, STATE_KEY};
use crate::spool::control::{ControlSpool, Queued};
use crate::spool::layout;

pub fn retry(spool: &mut dyn ControlSpool, p: &DlqPick, max_task_bytes: u64) -> CtlResult {
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
fn retry_one(
    spool: &mut dyn ControlSpool,
    worker: &str,
    l: &Letter,
    max_task_bytes: u64,
) -> Result<String, CtlError> {
    let dl: DeadLetter =
        serde_json::from_slice(&l.stored.bytes).map_err(|e| refuse(l, format!("not a dead letter: {e}")))?;
    let Some(id) = dl.task_id.clone().filter(|id| is_valid_id(id)) else {
        return Err(refuse(l, "it has no task id; fix the file and submit it again"));
    };
    let (mut doc, from_original) = match (dl.reason.as_str(), dl.task.clone()) {
        ("invalid", _) => corrected(spool, worker, l, &dl, &id, max_task_bytes)?,
        (_, Some(Value::Object(doc))) => (doc, false),
        _ => return Err(refuse(l, "it does not hold its task")),
    };
    let result = spool.result(worker, &id)?.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let finished = result.as_ref().and_then(|r| r.get("finished_at")).and_then(Value::as_str).unwrap_or("");
    // Both are written by the same clock format, so the text order is the time order.
    if result.is_some() && finished > dl.dead_lettered_at.as_str() {
        spool.retire(worker, &l.stored)?;
        return Ok(format!("{}: task {id} already ran again since; dead letter archived", l.name));
    }
    if let Some(where_) = spool.pending(worker, &id) {
        spool.retire(worker, &l.stored)?;
        let where_ = where_.as_str();
        return Ok(format!("{}: task {id} is already {where_} again; dead letter archived", l.name));
    }
    if result.as_ref().and_then(|r| r.get("status")).and_then(Value::as_str) == Some(COMPLETED) {
        return Err(refuse(l, format!("task {id} has a completed result")));
    }
    // The session is kept: the next run resumes the conversation of the failed ones.
    let state = State {
        history: dl.history.clone(),
        session: dl.session.clone(),
        runs: dl.runs.clone(),
        ..State::default()
    };
    let state = serde_json::to_value(&state).map_err(|e| refuse(l, e))?;
    doc.insert(STATE_KEY.into(), state);
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(doc)).map_err(|e| refuse(l, e))?;
    bytes.push(b'\n');
    if spool.result_exists(worker, &id) {
        spool.set_aside_result(worker, &id)?;
    }
    spool.create_queue(worker)?;
    match spool.enqueue(worker, &id, bytes) {
        Ok(Queued::At(_)) => {}
        Ok(Queued::Taken) => return Err(refuse(l, format!("a task {id} was queued meanwhile"))),
        Err(e) => return Err(CtlError::io(format!("cannot queue {id} in {}", e.at), &e.cause)),
    }
    spool.retire(worker, &l.stored)?;
    if from_original {
        // Its content is queued now; the copy kept beside the dead letter is done with.
        spool.drop_original(worker, &l.stored);
    }
    Ok(format!("{}: task {id} queued again (its history of {} failure(s) kept)", l.name, dl.history.len()))
}

/// The task of a dead letter rejected as invalid, as it is now, checked as the worker checks
/// it: the original file the worker kept beside the letter (whose writer may have finished it
/// since it was read half-written), else the object the letter holds. Returns it, and whether
/// it came from the original.
fn corrected(
    spool: &dyn ControlSpool,
    worker: &str,
    l: &Letter,
    dl: &DeadLetter,
    id: &str,
    max: u64,
) -> Result<(Map<String, Value>, bool), CtlError> {
    let original = spool.original(worker, &l.stored, max).map_err(|e| refuse(l, e))?;
    let from_original = original.is_some();
    let bytes = match (original, &dl.task) {
        (Some(bytes), _) => bytes,
        (None, Some(task)) => serde_json::to_vec(task).map_err(|e| refuse(l, e))?,
        (None, None) => return Err(refuse(l, "it does not hold its task")),
    };
    let task = Task::parse(&bytes, layout::stem_of(&dl.source_file), worker).map_err(|why| {
        refuse(l, format!("it was rejected as invalid and still is: {why}; fix the task and submit it again"))
    })?;
    if task.id != id {
        return Err(refuse(l, format!("its task_id is {:?} now; submit it as a new task", task.id)));
    }
    Ok((task.doc, from_original))
}
