//! `watcherctl dlq list|show|purge`: a worker's dead letters (`dlq/<worker>/<name>.json`).
//! A dead letter is named by its file's stem — the task id, or `<id>.<ms>` when that id was
//! dead-lettered before, or `invalid-<file>` for a file with no usable id; commands take that
//! name or a task id. `retry` is in [`super::retry`].

use serde_json::{json, Value};

use super::args::DlqPick;
use super::exit::{CtlError, CtlResult, NOT_FOUND, OK, USAGE};
use super::output::{block, cell, one_line, print, print_json, table};
use crate::spool::control::{ControlSpool, Stored};

/// One dead letter.
pub struct Letter {
    /// Its name, where it is, and its bytes.
    pub stored: Stored,
    /// The name (the file's stem).
    pub name: String,
    /// Its content; `Null` when it is not JSON.
    pub value: Value,
}

impl Letter {
    fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key)
    }

    fn task_id(&self) -> Option<&str> {
        self.get("task_id").and_then(Value::as_str)
    }

    fn summary(&self) -> Value {
        json!({
            "name": self.name,
            "task_id": self.get("task_id"),
            "reason": self.get("reason"),
            "message": self.get("message"),
            "attempts": self.get("attempts"),
            "dead_lettered_at": self.get("dead_lettered_at"),
            "source_file": self.get("source_file"),
        })
    }
}

/// Every dead letter of `worker`, oldest first.
pub fn letters(spool: &dyn ControlSpool, worker: &str) -> Result<Vec<Letter>, CtlError> {
    let mut out = Vec::new();
    for stored in spool.dead_letters(worker)? {
        let value = serde_json::from_slice(&stored.bytes).unwrap_or(Value::Null);
        out.push(Letter { name: stored.name.clone(), stored, value });
    }
    let when = |l: &Letter| l.get("dead_lettered_at").and_then(Value::as_str).unwrap_or("").to_string();
    out.sort_by(|a, b| when(a).cmp(&when(b)).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// The dead letter named `id`, or else the only one of task `id`.
pub fn find(spool: &dyn ControlSpool, worker: &str, id: &str) -> Result<Letter, CtlError> {
    let mut all = letters(spool, worker)?;
    if let Some(i) = all.iter().position(|l| l.name == id) {
        return Ok(all.swap_remove(i));
    }
    let mut of_task: Vec<Letter> = all.into_iter().filter(|l| l.task_id() == Some(id)).collect();
    match of_task.len() {
        0 => Err(CtlError::new(
            NOT_FOUND,
            format!("no dead letter {id:?} for {worker}: see `watcherctl dlq list {worker}`"),
        )),
        1 => Ok(of_task.remove(0)),
        _ => {
            let names: Vec<&str> = of_task.iter().map(|l| l.name.as_str()).collect();
            Err(CtlError::new(
                USAGE,
                format!("task {id} has several dead letters; name one: {}", names.join(", ")),
            ))
        }
    }
}

/// The letters a `DlqPick` names.
pub fn pick(spool: &dyn ControlSpool, p: &DlqPick) -> Result<Vec<Letter>, CtlError> {
    super::require_known(spool, &p.worker)?;
    match (&p.id, p.all) {
        (Some(id), false) => Ok(vec![find(spool, &p.worker, id)?]),
        (None, true) => letters(spool, &p.worker),
        _ => Err(CtlError::usage("name a dead letter, or give --all")),
    }
}

pub fn list(spool: &dyn ControlSpool, worker: &str, json: bool) -> CtlResult {
    super::require_known(spool, worker)?;
    let all = letters(spool, worker)?;
    if json {
        print_json(&Value::Array(all.iter().map(Letter::summary).collect()))?;
        return Ok(OK);
    }
    if all.is_empty() {
        return Err(CtlError::new(OK, format!("no dead letters for {worker}")));
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                cell(l.get("task_id")),
                cell(l.get("reason")),
                cell(l.get("attempts")),
                cell(l.get("dead_lettered_at")),
                one_line(l.get("message").and_then(Value::as_str).unwrap_or(""), 72),
            ]
        })
        .collect();
    print(&table(&["NAME", "TASK_ID", "REASON", "ATTEMPTS", "DEAD-LETTERED", "MESSAGE"], &rows))?;
    Ok(OK)
}

pub fn show(spool: &dyn ControlSpool, worker: &str, id: &str, json: bool) -> CtlResult {
    super::require_known(spool, worker)?;
    let l = find(spool, worker, id)?;
    if json {
        let mut text = String::from_utf8_lossy(&l.stored.bytes).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        print(&text)?;
        return Ok(OK);
    }
    let mut pairs = vec![("name", l.name.clone()), ("file", l.stored.at.clone())];
    for (label, key) in [
        ("task", "task_id"),
        ("reason", "reason"),
        ("message", "message"),
        ("attempts", "attempts"),
        ("dead-lettered", "dead_lettered_at"),
        ("source file", "source_file"),
        ("original", "original_file"),
    ] {
        if l.get(key).is_some_and(|v| !v.is_null()) {
            pairs.push((label, cell(l.get(key))));
        }
    }
    let mut text = block(&pairs);
    let history = l.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    if !history.is_empty() {
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|f| {
                let code = f.get("exit_code").or(f.get("signal"));
                vec![
                    cell(f.get("attempt")),
                    cell(f.get("reason")),
                    cell(code),
                    cell(f.get("finished_at")),
                    one_line(f.get("message").and_then(Value::as_str).unwrap_or(""), 60),
                ]
            })
            .collect();
        text.push_str("\nfailures:\n");
        text.push_str(&table(&["ATTEMPT", "REASON", "CODE", "FINISHED", "MESSAGE"], &rows));
    }
    if let Some(task) = l.get("task").filter(|t| !t.is_null()) {
        text.push_str("\ntask:\n");
        text.push_str(&serde_json::to_string_pretty(task).unwrap_or_default());
        text.push('\n');
    } else if let Some(preview) = l.get("raw_preview").and_then(Value::as_str) {
        text.push_str("\nstart of the file:\n");
        text.push_str(preview);
        text.push('\n');
    }
    print(&text)?;
    Ok(OK)
}

pub fn purge(spool: &mut dyn ControlSpool, p: &DlqPick) -> CtlResult {
    let letters = pick(spool, p)?;
    let stored: Vec<Stored> = letters.into_iter().map(|l| l.stored).collect();
    spool.purge(&p.worker, &stored)?;
    let out: String = stored.iter().map(|l| format!("purged {}\n", l.name)).collect();
    print(&out)?;
    Ok(OK)
}
