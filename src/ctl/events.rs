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
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use super::args::EventsArgs;
use super::exit::{CtlError, CtlResult, IO, OK};
use super::folders;
use super::output::{cell, print};
use super::wait::Watcher;
use crate::format::records::MAX_RECORD_BYTES;
use crate::spool::read;
use crate::sys::clock;

/// Columns of the readable form, wide enough for the usual values (longer ones push).
const WIDTHS: [usize; 4] = [24, 16, 12, 24];

struct Event {
    name: String,
    mtime: SystemTime,
    value: Value,
}

/// The events among `names` in `dir` not in `seen`, oldest first; adds them to `seen`. A
/// file that cannot be read (not a regular file, say) is reported on stderr, by name, once,
/// and counted in `unreadable`.
fn new_events(
    dir: &Path,
    names: Vec<String>,
    seen: &mut HashSet<String>,
    unreadable: &mut usize,
) -> Vec<Event> {
    let mut events = Vec::new();
    for name in names {
        if name.starts_with('.') || !name.ends_with(".json") || seen.contains(&name) {
            continue;
        }
        let path = dir.join(&name);
        let (file, meta) = match read::open(&path) {
            Ok(f) => f,
            Err(e) if e.is_missing() => continue,
            Err(e) => {
                eprintln!("watcherctl: cannot read {}: {e}", path.display());
                *unreadable += 1;
                seen.insert(name);
                continue;
            }
        };
        // Written whole by the listener; one that does not parse yet is taken when closed.
        let bytes = read::read_opened(&file, &meta, MAX_RECORD_BYTES).ok();
        let value = bytes.and_then(|b| serde_json::from_slice(&b).ok());
        if let (Some(value), Ok(mtime)) = (value, meta.modified()) {
            events.push(Event { name, mtime, value });
        }
    }
    events.sort_by(|a: &Event, b: &Event| a.name.cmp(&b.name));
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
    let mut unreadable = 0;
    let mut text: String = new_events(&dir, folders::list(&dir), &mut seen, &mut unreadable)
        .iter()
        .map(|e| line(e, a.json))
        .collect();
    print(&text)?;
    let Some(w) = watcher.as_mut() else {
        return match unreadable {
            0 => Ok(OK),
            n => Err(CtlError::new(IO, format!("{n} event file(s) in {} could not be read", dir.display()))),
        };
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
        text = new_events(&dir, names, &mut seen, &mut unreadable).iter().map(|e| line(e, a.json)).collect();
        print(&text)?;
    }
}
