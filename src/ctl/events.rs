//! `watcherctl events [--follow]`: the events orchestrator-listener writes to
//! `triggers/orchestrator/`, oldest first (their names sort by the time of what they
//! report); `--follow` then sleeps on inotify and prints each new one as it arrives.
//!
//! Every event has `id`, `event` and `time`; task events (`task_completed`, `task_failed`)
//! have `worker`, `task_id`, `status`, `reason`, `duration_seconds`, …; health events
//! (`worker_unhealthy`, `worker_recovered`) have `worker` and `why`; `batch_completed` has
//! `batch`, `completed`, `failed`. The readable form shows one line each; `--json` the
//! whole event.

use serde_json::Value;

use super::args::EventsArgs;
use super::exit::{CtlError, CtlResult, IO, OK};
use super::output::{cell, print};
use crate::spool::control::{ControlSpool, EventsRead, Place, StoredEvent};
use crate::sys::clock;

/// Columns of the readable form, wide enough for the usual values (longer ones push).
const WIDTHS: [usize; 4] = [24, 16, 12, 24];

fn line(e: &StoredEvent, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(&e.value).unwrap_or_default());
    }
    let get = |k: &str| cell(e.value.get(k));
    let time =
        e.value.get("time").and_then(Value::as_str).map_or_else(|| clock::rfc3339(e.written), str::to_string);
    let event = get("event");
    // What the event is about: the task, the batch, or why the worker is unhealthy.
    let (subject, details): (String, &[&str]) = match event.as_str() {
        "batch_completed" => (get("batch"), &["completed", "failed", "size"]),
        "worker_unhealthy" => (get("why").replace(['[', ']', '"'], ""), &["message"]),
        "worker_recovered" => ("-".into(), &["down_seconds"]),
        _ => (get("task_id"), &["status", "reason", "duration_seconds", "batch"]),
    };
    let cells = [time, event, get("worker"), subject];
    let mut text = String::new();
    for (c, w) in cells.iter().zip(WIDTHS) {
        text.push_str(&format!("{c:<w$}  "));
    }
    let extra: Vec<String> = details
        .iter()
        .filter_map(|k| e.value.get(*k).filter(|v| !v.is_null()).map(|v| format!("{k}={}", cell(Some(v)))))
        .collect();
    text.push_str(&extra.join(" "));
    format!("{}\n", text.trim_end())
}

/// Prints what was read; says on stderr, once each, what could not be read, and counts it.
fn show(read: EventsRead, json: bool, unreadable: &mut usize) -> Result<(), CtlError> {
    for e in &read.unreadable {
        eprintln!("watcherctl: {e}");
    }
    *unreadable += read.unreadable.len();
    let text: String = read.events.iter().map(|e| line(e, json)).collect();
    print(&text)
}

pub fn events(spool: &dyn ControlSpool, a: &EventsArgs) -> CtlResult {
    let mut feed = spool.events(a.follow)?;
    let mut unreadable = 0;
    show(feed.next(false)?, a.json, &mut unreadable)?;
    if !a.follow {
        return match unreadable {
            0 => Ok(OK),
            n => Err(CtlError::new(
                IO,
                format!("{n} event file(s) in {} could not be read", spool.locate(Place::Events)),
            )),
        };
    }
    loop {
        show(feed.next(true)?, a.json, &mut unreadable)?;
    }
}
