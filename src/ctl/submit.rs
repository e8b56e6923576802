//! `watcherctl submit`: build a task, check it as the worker will, queue it atomically (a
//! dot-temp file synced and renamed into `tasks/<worker>/`, or one write to the worker's
//! pipe), and with `--wait` sleep on inotify until its result exists.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::args::SubmitArgs;
use super::exit::{CtlError, CtlResult, NO_WORKER, OK, REFUSED, TIMED_OUT};
use super::output::{print, print_json};
use super::result::{exit_of, render};
use crate::config::Config;
use crate::format::records::ResultHead;
use crate::format::task::Task;
use crate::spool::control::{ControlSpool, Queued, Waiter};

/// Largest line written to a pipe in one piece (POSIX PIPE_BUF on Linux): longer writes may
/// interleave with other writers'.
pub const PIPE_ATOMIC_BYTES: usize = libc::PIPE_BUF;

pub fn submit(spool: &mut dyn ControlSpool, cfg: &Config, a: &SubmitArgs) -> CtlResult {
    super::check_name(&a.worker)?;
    if let Some(s) = a.wait_timeout.filter(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(CtlError::usage(format!("--wait-timeout {s}: expected a number of seconds >= 0")));
    }
    let description = description(&a.description, cfg.tuning.max_task_bytes)?;
    let id = a.id.clone().unwrap_or_else(new_id);
    let doc = task_doc(&id, &a.worker, description, a)?;
    let bytes =
        serde_json::to_vec(&doc).map_err(|e| CtlError::usage(format!("cannot encode the task: {e}")))?;
    // The worker's own checks, so a bad task is refused here rather than dead-lettered.
    Task::parse(&bytes, &id, &a.worker)
        .map_err(|e| CtlError::usage(format!("the task is not valid: {e}")))?;
    let max = cfg.tuning.max_task_bytes;
    if bytes.len() as u64 > max {
        return Err(CtlError::usage(format!(
            "the task is {} bytes, larger than MAX_TASK_BYTES={max}",
            bytes.len()
        )));
    }
    if !a.pipe && !spool.known(&a.worker).accepts_tasks() {
        if !a.create {
            return Err(super::no_such_worker(spool, &a.worker));
        }
        spool.create_queue(&a.worker)?;
    }
    if let Some(where_) = spool.pending(&a.worker, &id) {
        let where_ = where_.as_str();
        return Err(CtlError::new(REFUSED, format!("a task {id:?} is already {where_} for {}", a.worker)));
    }
    // A result refuses the id, unless it is the rejection of an invalid file: this task is its
    // correction, and that result is moved aside for the one to come.
    if let Some(bytes) = spool.result(&a.worker, &id)? {
        if !serde_json::from_slice::<ResultHead>(&bytes).is_ok_and(|r| r.is_invalid()) {
            return Err(CtlError::new(
                REFUSED,
                format!("task {id:?} already has a result: see `watcherctl result {} {id}`", a.worker),
            ));
        }
        spool.set_aside_result(&a.worker, &id)?;
    }
    // Watch before queueing, so that even an instant result is seen.
    let watcher = match a.wait {
        true => Some(spool.watch_results(&a.worker)?),
        false => None,
    };
    let file = if a.pipe {
        let Some(pipe) = spool.pipe(&a.worker) else {
            return Err(CtlError::usage("this spool has no pipes; submit without --pipe"));
        };
        let mut line = bytes;
        line.push(b'\n');
        write_pipe(&pipe, &a.worker, &line)?;
        pipe.display().to_string()
    } else {
        queue_task(spool, &a.worker, &id, bytes)?
    };
    match watcher {
        None if a.json => print_json(&json!({"task_id": id, "worker": a.worker, "file": file}))?,
        None => print(&format!("{id}\n"))?,
        Some(w) => return wait(spool, &a.worker, &id, w, a),
    }
    Ok(OK)
}

/// The description: the argument, or all of stdin for `-`, read up to the task size limit
/// (`max` bytes) and no further: an endless producer gets an error, not all of memory.
fn description(arg: &str, max: u64) -> Result<String, CtlError> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut bytes = Vec::new();
    io::stdin()
        .lock()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CtlError::usage(format!("cannot read the description from standard input: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(CtlError::usage(format!(
            "the description on standard input is larger than MAX_TASK_BYTES={max}; stopped reading it there"
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| CtlError::usage("the description on standard input is not UTF-8 text"))
}

/// `20260328T104512Z-3f9a1c2e`: the UTC time of the submit, so ids sort by it, and 32
/// random bits, so submits in the same second do not collide.
pub fn new_id() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    format!("{stamp}-{:08x}", fastrand::u32(..))
}

fn task_doc(id: &str, worker: &str, description: String, a: &SubmitArgs) -> Result<Value, CtlError> {
    let mut doc = Map::new();
    doc.insert("task_id".into(), id.into());
    doc.insert("description".into(), description.into());
    doc.insert("worker".into(), worker.into());
    if let Some(t) = a.timeout {
        let t = serde_json::Number::from_f64(t)
            .ok_or_else(|| CtlError::usage(format!("--timeout {t} is not a number of seconds")))?;
        doc.insert("timeout".into(), t.into());
    }
    if let Some(n) = a.max_retries {
        doc.insert("max_retries".into(), n.into());
    }
    if !a.meta.is_empty() {
        let mut meta = Map::new();
        for kv in &a.meta {
            let (key, value) = parse_meta(kv)?;
            meta.insert(key, value);
        }
        doc.insert("metadata".into(), meta.into());
    }
    Ok(doc.into())
}

/// `KEY=text` (a string) or `KEY:=json` (any JSON value).
fn parse_meta(kv: &str) -> Result<(String, Value), CtlError> {
    let bad = || CtlError::usage(format!("--meta {kv:?}: expected KEY=VALUE or KEY:=JSON"));
    let eq = kv.find('=').ok_or_else(bad)?;
    let (key, value) = (&kv[..eq], &kv[eq + 1..]);
    match key.strip_suffix(':') {
        Some(key) if !key.is_empty() => {
            let v = serde_json::from_str(value)
                .map_err(|e| CtlError::usage(format!("--meta {kv:?}: not valid JSON after := ({e})")))?;
            Ok((key.to_string(), v))
        }
        Some(_) => Err(bad()),
        None if key.is_empty() => Err(bad()),
        None => Ok((key.to_string(), value.into())),
    }
}

/// Queues the task, never replacing one of its id; returns where it is.
fn queue_task(
    spool: &mut dyn ControlSpool,
    worker: &str,
    id: &str,
    bytes: Vec<u8>,
) -> Result<String, CtlError> {
    match spool.enqueue(worker, id, bytes) {
        Ok(Queued::At(at)) => Ok(at),
        Ok(Queued::Taken) => Err(CtlError::new(REFUSED, format!("a task {id:?} is already queued"))),
        Err(e) => Err(CtlError::io(format!("cannot queue the task in {}", e.at), &e.cause)),
    }
}

/// One write(2) of the line to the worker's pipe: atomic, so lines of several writers never
/// mix. Refused when no worker reads the pipe.
fn write_pipe(path: &Path, worker: &str, line: &[u8]) -> Result<(), CtlError> {
    if line.len() > PIPE_ATOMIC_BYTES {
        return Err(CtlError::usage(format!(
            "the task is {} bytes as a line, more than the {PIPE_ATOMIC_BYTES} a pipe takes in one piece; submit it without --pipe",
            line.len()
        )));
    }
    // Non-blocking open: fails at once (ENXIO) instead of waiting for a reader.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => CtlError::new(
                NO_WORKER,
                format!(
                    "worker {worker:?} has no pipe {}: set PIPE_INTAKE=true for it and start it",
                    path.display()
                ),
            ),
            Some(libc::ENXIO) => CtlError::new(
                NO_WORKER,
                format!("no worker reads {}: is worker-watcher@{worker} running?", path.display()),
            ),
            _ => CtlError::io(format!("cannot open {}", path.display()), &e),
        })?;
    let is_fifo = file.metadata().is_ok_and(|m| m.file_type().is_fifo());
    if !is_fifo {
        return Err(CtlError::new(NO_WORKER, format!("{} is not a pipe", path.display())));
    }
    // Blocking from here: a full pipe waits for the worker to read, still in one piece.
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()))
        .map_err(|e| CtlError::io(format!("cannot use {}", path.display()), &e.into()))?;
    match file.write(line) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(CtlError::new(
            super::exit::IO,
            format!("only {n} of {} bytes written to the pipe", line.len()),
        )),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            Err(CtlError::new(NO_WORKER, format!("worker {worker:?} stopped reading its pipe")))
        }
        Err(e) => Err(CtlError::io(format!("cannot write to {}", path.display()), &e)),
    }
}

/// `--wait`: prints the result when it exists (exit 0 or 1), or gives up at the timeout (75).
fn wait(
    spool: &dyn ControlSpool,
    worker: &str,
    id: &str,
    mut w: Box<dyn Waiter>,
    a: &SubmitArgs,
) -> CtlResult {
    if !a.json {
        print(&format!("{id}\n"))?;
    }
    let deadline = a.wait_timeout.map(|s| Instant::now() + Duration::from_secs_f64(s.min(1e9)));
    loop {
        // A result is written whole (temp file and rename); one that does not parse yet was
        // written in place by someone else and is read again when closed.
        let read = spool.result(worker, id)?;
        if let Some(result) = read.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
            match a.json {
                true => print_json(&result)?,
                false => print(&render(&result))?,
            }
            return Ok(exit_of(&result));
        }
        let woke = w.wait(deadline).map_err(|e| CtlError::io("cannot wait for the result", &e))?;
        if !woke {
            if a.json {
                print_json(&json!({"task_id": id, "worker": worker, "status": "pending"}))?;
            }
            let secs = a.wait_timeout.unwrap_or(0.0);
            return Err(CtlError::new(
                TIMED_OUT,
                format!("no result for {id} after {secs} s; it is still queued or running: `watcherctl result {worker} {id}` later"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::task::is_valid_id;

    #[test]
    fn generated_ids_are_valid_and_sortable() {
        let id = new_id();
        assert!(is_valid_id(&id), "{id}");
        assert_eq!(id.len(), "20260328T104512Z-3f9a1c2e".len(), "{id}");
        assert_eq!(&id[8..9], "T");
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn meta_strings_and_json() {
        assert_eq!(parse_meta("batch=b1"), Ok(("batch".into(), "b1".into())));
        assert_eq!(parse_meta("n:=3"), Ok(("n".into(), 3.into())));
        assert_eq!(parse_meta("eq=a=b"), Ok(("eq".into(), "a=b".into())));
        assert!(parse_meta("novalue").is_err());
        assert!(parse_meta("=x").is_err());
        assert!(parse_meta(":=1").is_err());
        assert!(parse_meta("n:=not json").is_err());
    }
}
