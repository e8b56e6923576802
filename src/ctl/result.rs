//! `watcherctl result WORKER ID`: a task's result file, as it is (`--json`) or readable; the
//! exit status says whether it completed (0) or failed (1). Also the readable form that
//! `submit --wait` prints.

use serde_json::Value;

use super::args::ResultArgs;
use super::exit::{CtlError, CtlResult, NOT_FOUND, OK, TASK_FAILED};
use super::output::{block, cell, print};
use crate::format::records::COMPLETED;
use crate::spool::control::{ControlSpool, Place};

pub fn result(spool: &dyn ControlSpool, a: &ResultArgs) -> CtlResult {
    super::require_known(spool, &a.worker)?;
    let Some(bytes) = spool.result(&a.worker, &a.id)? else {
        let why = match spool.pending(&a.worker, &a.id) {
            Some(where_) => format!("task {} is {}: no result yet", a.id, where_.as_str()),
            None => format!("no result for task {} of {}", a.id, a.worker),
        };
        return Err(CtlError::new(NOT_FOUND, why));
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        let at = spool.locate(Place::Result(&a.worker, &a.id));
        CtlError::new(super::exit::IO, format!("{at} is not JSON: {e}"))
    })?;
    if a.json {
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        print(&text)?;
    } else {
        print(&render(&value))?;
    }
    Ok(exit_of(&value))
}

/// 0 for a completed task, 1 for anything else.
pub fn exit_of(result: &Value) -> u8 {
    if result.get("status").and_then(Value::as_str) == Some(COMPLETED) {
        OK
    } else {
        TASK_FAILED
    }
}

/// The result for a person: outcome, timing, agent figures, then the output.
pub fn render(r: &Value) -> String {
    let get = |k: &str| r.get(k).filter(|v| !v.is_null());
    let mut pairs: Vec<(&str, String)> =
        vec![("task", format!("{} ({})", cell(get("task_id")), cell(get("worker"))))];
    let status = match get("reason") {
        Some(reason) => format!("{} ({})", cell(get("status")), cell(Some(reason))),
        None => cell(get("status")),
    };
    pairs.push(("status", status));
    if let Some(m) = get("message") {
        pairs.push(("message", cell(Some(m))));
    }
    if let Some(code) = get("exit_code") {
        pairs.push(("exit code", cell(Some(code))));
    }
    pairs.push(("attempts", cell(get("attempts"))));
    if let Some(s) = get("started_at") {
        pairs.push(("started", cell(Some(s))));
    }
    pairs.push(("finished", cell(get("finished_at"))));
    if let Some(d) = get("duration_seconds").and_then(Value::as_f64) {
        pairs.push(("duration", format!("{d:.2} s (last attempt)")));
    }
    if let Some(agent) = get("agent") {
        pairs.push(("agent", agent_line(agent)));
    }
    if let Some(meta) = get("metadata") {
        pairs.push(("metadata", meta.to_string()));
    }
    if let Some(out) = output_text(r) {
        pairs.push(("output", out));
    }
    if let Some(tail) = get("stderr_tail").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
        pairs.push(("stderr", tail.trim_end().to_string()));
    }
    block(&pairs)
}

fn agent_line(agent: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(cost) = agent.get("total_cost_usd").and_then(Value::as_f64) {
        parts.push(format!("${cost:.4}"));
    }
    if let Some(turns) = agent.get("num_turns").and_then(Value::as_u64) {
        parts.push(format!("{turns} turn(s)"));
    }
    if let Some(s) = agent.get("session_id").and_then(Value::as_str) {
        parts.push(format!("session {s}"));
    }
    if parts.is_empty() {
        agent.to_string()
    } else {
        parts.join(", ")
    }
}

/// The agent's answer: Claude's `result` text, the plain text it printed, or its JSON.
fn output_text(r: &Value) -> Option<String> {
    let text = match r.get("output")? {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Object(o) if o.get("result").is_some_and(Value::is_string) => {
            o.get("result").and_then(Value::as_str).unwrap_or_default().to_string()
        }
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    let truncated = r.get("output_truncated").and_then(Value::as_bool) == Some(true);
    if text.trim().is_empty() && !truncated {
        return None;
    }
    Some(match truncated {
        true => {
            let total = r.get("output_bytes").and_then(Value::as_u64).unwrap_or(0);
            format!("{}\n(truncated: the agent wrote {total} bytes)", text.trim_end())
        }
        false => text.trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completed_result_reads_well() {
        let r = json!({"task_id": "t1", "worker": "marie", "status": "completed", "exit_code": 0,
            "attempts": 1, "finished_at": "2026-01-01T00:00:00.000Z", "duration_seconds": 1.5,
            "output": {"result": "Hello\nthere"}, "agent": {"total_cost_usd": 0.0012, "num_turns": 1}});
        let text = render(&r);
        assert!(text.starts_with("task       t1 (marie)\nstatus     completed\n"), "{text}");
        assert!(text.contains("output     Hello\n           there\n"), "{text}");
        assert!(text.contains("agent      $0.0012, 1 turn(s)"), "{text}");
        assert_eq!(exit_of(&r), OK);
    }

    #[test]
    fn failed_result_shows_why() {
        let r = json!({"task_id": "t2", "status": "failed", "reason": "exit_code", "message": "gave up",
            "stderr_tail": "boom\n", "output": null});
        let text = render(&r);
        assert!(text.contains("status    failed (exit_code)\nmessage   gave up\n"), "{text}");
        assert!(text.contains("stderr    boom\n"), "{text}");
        assert!(!text.contains("output"), "{text}");
        assert_eq!(exit_of(&r), TASK_FAILED);
    }
}
