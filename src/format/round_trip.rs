//! Tests of the contract between the two daemons: every shape of result the worker writes,
//! built from its own `TaskResult` and serialized by its own `to_bytes`, read back by the
//! listener's reader (`format::summary::read`) with the same facts. A field renamed or retyped on one
//! side only fails here, not in a fleet whose events quietly lose a reason or a cost.

use serde_json::{json, Value};

use crate::agent::AgentReport;
use crate::format::records::{to_bytes, TaskResult, COMPLETED, FAILED};
use crate::format::summary::{self, Agent, ResultReading, Summary};

/// A completed result as the worker writes it: plain text output, no agent report.
fn completed(id: &str) -> TaskResult {
    TaskResult {
        task_id: id.into(),
        worker: "marie".into(),
        status: COMPLETED.into(),
        reason: None,
        message: None,
        exit_code: Some(0),
        signal: None,
        output: Value::String("done\n".into()),
        output_truncated: false,
        output_bytes: 5,
        stderr_tail: String::new(),
        attempts: 1,
        started_at: Some("2026-03-01T10:00:00.123456Z".into()),
        finished_at: "2026-03-01T10:00:01.987654Z".into(),
        duration_seconds: 1.864198123,
        hostname: "host-a".into(),
        metadata: Value::Null,
        agent: None,
    }
}

/// A failed result with `reason`, as `give_up` writes it.
fn failed(id: &str, reason: &str) -> TaskResult {
    TaskResult {
        status: FAILED.into(),
        reason: Some(reason.into()),
        message: Some(format!("{reason}: what happened, in words")),
        exit_code: Some(3),
        stderr_tail: "line one\nline two\n".into(),
        attempts: 3,
        ..completed(id)
    }
}

/// What Claude Code's result object gives the worker.
fn report(is_error: bool) -> AgentReport {
    AgentReport {
        is_error,
        subtype: Some(if is_error { "error_during_execution" } else { "success" }.into()),
        session_id: Some("0b9c2d6e-1f2a-4b3c-8d4e-5f6a7b8c9d0e".into()),
        num_turns: Some(7),
        total_cost_usd: Some(0.123456789),
        input_tokens: 1234,
        output_tokens: 567,
        cache_creation_input_tokens: 89,
        cache_read_input_tokens: 4321,
    }
}

/// The facts the listener must read from `r`; `batch` is what its metadata names.
fn facts(r: &TaskResult, batch: Option<(&str, Option<u64>)>) -> Summary {
    Summary {
        task_id: r.task_id.clone(),
        status: if r.status == COMPLETED { COMPLETED } else { FAILED },
        reason: r.reason.clone(),
        exit_code: r.exit_code.map(i64::from),
        attempts: Some(u64::from(r.attempts)),
        started_at: r.started_at.clone(),
        finished_at: Some(r.finished_at.clone()),
        duration_seconds: Some(r.duration_seconds),
        metadata: r.metadata.clone(),
        agent: r.agent.as_ref().map(|a| Agent {
            total_cost_usd: a.total_cost_usd,
            num_turns: a.num_turns,
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            cache_creation_input_tokens: a.cache_creation_input_tokens,
            cache_read_input_tokens: a.cache_read_input_tokens,
        }),
        batch: batch.map(|(name, size)| (name.to_string(), size)),
    }
}

/// Serializes `r` as the worker's writer does (`to_bytes`) and reads it back as the listener's
/// backends do (`summary::read` over the stored bytes).
fn read_back(r: &TaskResult) -> Summary {
    let bytes = to_bytes(r);
    match summary::read(bytes.as_slice(), bytes.len() as u64, &r.task_id) {
        ResultReading::Result(s) => *s,
        other => panic!("{}: {other:?}", r.task_id),
    }
}

fn assert_round_trip(r: &TaskResult, batch: Option<(&str, Option<u64>)>) {
    assert_eq!(read_back(r), facts(r, batch), "{}", String::from_utf8_lossy(&to_bytes(r)));
}

#[test]
fn a_completed_result_reads_back_the_same() {
    assert_round_trip(&completed("plain"), None);
    let mut r = completed("agent");
    r.output = json!({"type": "result", "result": "done", "total_cost_usd": 0.123456789});
    r.agent = Some(report(false));
    r.started_at = None;
    assert_round_trip(&r, None);
}

#[test]
fn a_failed_result_of_every_reason_reads_back_the_same() {
    // Every reason a failed result carries (worker-watcher-tasks(5), RESULT, `reason`).
    for reason in crate::agent::reason::FINAL {
        assert_round_trip(&failed(&format!("f-{reason}"), reason), None);
    }
}

#[test]
fn a_failed_result_with_each_field_set_reads_back_the_same() {
    let mut killed = failed("killed", "signal");
    (killed.exit_code, killed.signal) = (None, Some(9));
    let mut agent = failed("agent", "agent_error");
    agent.agent = Some(report(true));
    agent.output = json!({"type": "result", "is_error": true, "result": "no"});
    let mut invalid = failed("invalid", "invalid");
    (invalid.exit_code, invalid.attempts, invalid.started_at) = (None, 0, None);
    (invalid.duration_seconds, invalid.stderr_tail) = (0.0, String::new());
    let mut cut = failed("cut", "timeout");
    (cut.output, cut.output_truncated, cut.output_bytes) = (json!("x".repeat(100)), true, 1 << 20);
    let mut negative = failed("negative", "exit_code");
    negative.exit_code = Some(-1);
    for r in [killed, agent, invalid, cut, negative] {
        assert_round_trip(&r, None);
    }
}

#[test]
fn the_batch_of_a_result_reads_back_from_its_metadata() {
    let cases = [
        (json!({"batch": "nightly", "batch_size": 3}), Some(("nightly", Some(3)))),
        (json!({"batch": "nightly", "batch_size": "3"}), Some(("nightly", Some(3)))),
        (json!({"batch": 42}), Some(("42", None))),
        (json!({"batch": "b", "batch_size": 0, "owner": {"team": "ops"}}), Some(("b", None))),
        (json!({"owner": "ops"}), None),
    ];
    for (i, (metadata, batch)) in cases.into_iter().enumerate() {
        let mut r =
            if i % 2 == 0 { completed(&format!("b{i}")) } else { failed(&format!("b{i}"), "timeout") };
        r.metadata = metadata;
        assert_round_trip(&r, batch);
    }
}

/// A result past the size the listener parses in memory (4 MiB) is streamed, its output
/// skipped: the facts are the same.
#[test]
fn a_result_with_a_large_output_reads_back_the_same() {
    let mut r = failed("large", "agent_error");
    r.output = Value::String("y".repeat(5 << 20));
    (r.output_bytes, r.agent) = (5 << 20, Some(report(true)));
    r.metadata = json!({"batch": "big", "batch_size": 2});
    assert_round_trip(&r, Some(("big", Some(2))));
}
