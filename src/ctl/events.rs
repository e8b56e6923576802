//! `watcherctl events [--follow]`: the events orchestrator-listener writes to
//! `triggers/orchestrator/`, oldest first (their names sort by the time of what they
//! report); `--follow` then sleeps on inotify and prints each new one as it arrives.
//!
//! Every event has `id`, `event` and `time`; task events (`task_completed`, `task_failed`)
//! have `worker`, `task_id`, `status`, `reason`, `duration_seconds`, …; health events
//! (`worker_unhealthy`, `worker_recovered`) have `worker` and `why`; `batch_completed` has
//! `batch`, `completed`, `failed`. The readable form shows one line each; `--json` the
//! whole event.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use super::args::EventsArgs;
use super::exit::{CtlError, CtlResult, OK};
use super::folders;
use super::output::{cell, print};
use super::wait::Watcher;
use crate::clock;

/// Columns of the readable form, wide enough for the usual values (longer ones push).
const WIDTHS: [usize; 4] = [24, 16, 12, 24];

struct Event {
    name: String,
    mtime: SystemTime,
    value: Value,
}

/// The events among `names` in `dir` not in `seen`, oldest first; adds them to `seen`.
fn new_events(dir: &Path, names: Vec<String>, seen: &mut HashSet<String>) -> Vec<Event> {
    let mut events: Vec<Event> = names
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .filter(|n| n.ends_with(".json") && !seen.contains(n))
        .filter_map(|name| {
            let path = dir.join(&name);
            let mtime = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            // Written whole by the listener; one that does not parse yet is taken when closed.
            let value = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
            Some(Event { name, mtime, value })
        })
        .collect();
    events.sort_by(|a, b| a.name.cmp(&b.name));
    seen.extend(events.iter().map(|e| e.name.clone()));
    events
}

fn line(e: &Event, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(&e.value).unwrap_or_default());
    }
    let get = |k: &str| cell(e.value.get(k));
    let time =
        e.value.get("time").and_then(Value::as_str).map_or_else(|| clock::rfc3339(e.mtime), str::to_string);
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

pub fn events(spool: &folders::Spool, a: &EventsArgs) -> CtlResult {
    let dir = spool.events();
    // Watch before the first listing, so nothing falls between them.
    let mut watcher = match a.follow {
        true => Some(
            Watcher::new(&dir).map_err(|e| CtlError::io(format!("cannot watch {}", dir.display()), &e))?,
        ),
        false => None,
    };
    let mut seen = HashSet::new();
    let mut text: String =
        new_events(&dir, folders::list(&dir), &mut seen).iter().map(|e| line(e, a.json)).collect();
    print(&text)?;
    let Some(w) = watcher.as_mut() else {
        return Ok(OK);
    };
    loop {
        let wake = w.next(None).map_err(|e| CtlError::io(format!("cannot watch {}", dir.display()), &e))?;
        let Some(wake) = wake else {
            continue;
        };
        let names = match wake.rescan {
            true => folders::list(&dir),
            false => wake.arrived.into_iter().filter_map(|n| n.into_string().ok()).collect(),
        };
        text = new_events(&dir, names, &mut seen).iter().map(|e| line(e, a.json)).collect();
        print(&text)?;
    }
}
