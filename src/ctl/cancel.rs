//! `watcherctl cancel W ID`: asks worker W to cancel task ID, queued, running or waiting for a
//! retry, and waits until it is (its result, status `cancelled`).
//!
//! The request goes through the spool ([`ControlSpool::request_cancel`]): the worker's own
//! backend delivers it, so it works wherever the worker runs and whether it runs now or later.
//! Idempotent: a task that has a result is reported with its status (exit 1), whether a cancel
//! or anything else ended it; asking again while a request waits is the same request.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::CancelArgs;
use super::exit::{CtlError, CtlResult, NOT_FOUND, OK, TASK_FAILED, TIMED_OUT, USAGE};
use super::output::{print, print_json};
use crate::format::records::{Heartbeat, CANCELLED};
use crate::format::task::is_valid_id;
use crate::spool::control::ControlSpool;
use crate::sys::clock;

/// The status of a result, as it is.
fn status_of(result: &Value) -> &str {
    result.get("status").and_then(Value::as_str).unwrap_or("unknown")
}

/// `USER@HOST` of whoever runs watcherctl, for the result and the worker's log.
fn requester() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::geteuid().to_string(), |u| u.name);
    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{user}@{host}")
}

/// The result of `id`, if it has one that parses.
fn result(spool: &dyn ControlSpool, worker: &str, id: &str) -> Result<Option<Value>, CtlError> {
    Ok(spool.result(worker, id)?.and_then(|b| serde_json::from_slice::<Value>(&b).ok()))
}

/// Prints how the task ended and returns the exit status: 0 when it was cancelled.
fn ended(a: &CancelArgs, r: &Value, already: bool) -> CtlResult {
    let status = status_of(r);
    if a.json {
        print_json(&json!({"task_id": a.id, "worker": a.worker, "status": status, "already": already}))?;
    } else if status == CANCELLED && !already {
        print(&format!("{}: cancelled\n", a.id))?;
    }
    let why = match already {
        true => format!("task {} already has a result: {status}", a.id),
        false => format!("task {} ended before it could be cancelled: {status}", a.id),
    };
    match (status == CANCELLED && !already, a.json) {
        (true, _) => Ok(OK),
        (false, true) => Ok(TASK_FAILED),
        (false, false) => Err(CtlError::new(TASK_FAILED, why)),
    }
}

/// Whether the worker is running (a fresh heartbeat that is not `stopped`).
fn worker_running(spool: &dyn ControlSpool, worker: &str) -> bool {
    let hb =
        spool.heartbeat(worker).ok().flatten().and_then(|b| serde_json::from_slice::<Heartbeat>(&b).ok());
    hb.is_some_and(|h| h.status != "stopped" && !h.is_stale(clock::now_f64()))
}

pub fn cancel(spool: &mut dyn ControlSpool, a: &CancelArgs) -> CtlResult {
    super::require_known(spool, &a.worker)?;
    if !is_valid_id(&a.id) {
        return Err(CtlError::new(USAGE, format!("{:?} is not a task id", a.id)));
    }
    // Watch first, then look: a result written in between is not missed.
    let mut waiter = match a.no_wait {
        false => Some(spool.watch_results(&a.worker)?),
        true => None,
    };
    if let Some(r) = result(spool, &a.worker, &a.id)? {
        return ended(a, &r, true);
    }
    if spool.pending(&a.worker, &a.id).is_none() {
        return Err(CtlError::new(
            NOT_FOUND,
            format!("no task {} queued or in flight for {}", a.id, a.worker),
        ));
    }
    spool.request_cancel(&a.worker, &a.id, &requester())?;
    let Some(w) = waiter.as_mut() else {
        match a.json {
            true => print_json(&json!({"task_id": a.id, "worker": a.worker, "status": "requested"}))?,
            false => print(&format!("{}: cancel requested\n", a.id))?,
        }
        return Ok(OK);
    };
    if !worker_running(spool, &a.worker) {
        eprintln!("watcherctl: {} is not running: the task is cancelled when it starts", a.worker);
    }
    let deadline = a.wait_timeout.map(|s| Instant::now() + Duration::from_secs_f64(s.min(1e9)));
    loop {
        if let Some(r) = result(spool, &a.worker, &a.id)? {
            return ended(a, &r, false);
        }
        if !w.wait(deadline).map_err(|e| CtlError::io("cannot wait for the result", &e))? {
            return Err(CtlError::new(
                TIMED_OUT,
                format!(
                    "{} not cancelled yet after {} s; the request stays with the worker",
                    a.id,
                    a.wait_timeout.unwrap_or(0.0)
                ),
            ));
        }
    }
}
