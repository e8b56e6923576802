//! Reading what the agent printed: Claude Code's JSON result object (`--output-format json`,
//! or the last line of `stream-json`), or plain text from any other agent; and what a failed
//! run means ([`classify`]).

pub(crate) mod classify;
pub mod reason;
pub(crate) mod session;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the agent reported about its own run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    #[serde(default)]
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

/// The agent's stdout, interpreted.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Parsed JSON when stdout was JSON, else the text.
    pub value: Value,
    /// Present when stdout carried a Claude result object.
    pub report: Option<AgentReport>,
    /// That result object itself, for the failure rules in [`classify`].
    pub result_object: Option<Value>,
}

/// Interprets what an agent printed: its stdout, and when that was cut at MAX_OUTPUT_BYTES,
/// the result object that ended it, kept apart so that a cap never hides an error.
pub fn interpret_captured(c: &crate::runner::Captured) -> Output {
    let mut out = interpret(&c.stdout, !c.stdout_truncated);
    let last = c.last_object.as_deref().and_then(|b| serde_json::from_slice::<Value>(b).ok());
    if let Some(obj) = last {
        if let Some(report) = report_of(&obj) {
            out.report = Some(report);
            out.result_object = Some(obj);
        }
    }
    out
}

/// Interprets captured stdout. `complete` is false when it was truncated.
pub fn interpret(stdout: &[u8], complete: bool) -> Output {
    if complete {
        if let Ok(value) = serde_json::from_slice::<Value>(stdout) {
            let report = report_of(&value);
            let result_object = report.as_ref().map(|_| value.clone());
            return Output { value, report, result_object };
        }
    }
    let text = String::from_utf8_lossy(stdout).into_owned();
    // stream-json: one event per line, the result object last.
    let result_object = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| report_of(v).is_some());
    let report = result_object.as_ref().and_then(report_of);
    Output { value: Value::String(text), report, result_object }
}

fn report_of(v: &Value) -> Option<AgentReport> {
    let obj = v.as_object()?;
    let looks_like_claude = obj.get("type").and_then(Value::as_str) == Some("result")
        || obj.contains_key("is_error")
        || obj.contains_key("session_id");
    if !looks_like_claude {
        return None;
    }
    let usage = obj.get("usage");
    let tokens = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Some(AgentReport {
        is_error: obj.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        subtype: obj.get("subtype").and_then(Value::as_str).map(str::to_string),
        session_id: obj.get("session_id").and_then(Value::as_str).map(str::to_string),
        num_turns: obj.get("num_turns").and_then(Value::as_u64),
        total_cost_usd: obj.get("total_cost_usd").and_then(Value::as_f64),
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
        cache_creation_input_tokens: tokens("cache_creation_input_tokens"),
        cache_read_input_tokens: tokens("cache_read_input_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":2210,"num_turns":1,"result":"Hello","session_id":"5f1d","total_cost_usd":0.0123,"usage":{"input_tokens":4,"cache_creation_input_tokens":10,"cache_read_input_tokens":20,"output_tokens":12}}"#;

    #[test]
    fn claude_json_result() {
        let out = interpret(SUCCESS.as_bytes(), true);
        assert_eq!(out.value["result"], "Hello");
        let r = out.report.expect("report");
        assert!(!r.is_error);
        assert_eq!(r.session_id.as_deref(), Some("5f1d"));
        assert_eq!(r.num_turns, Some(1));
        assert_eq!(r.total_cost_usd, Some(0.0123));
        assert_eq!((r.input_tokens, r.output_tokens, r.cache_read_input_tokens), (4, 12, 20));
    }

    #[test]
    fn agent_error_flag() {
        let s = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"session_id":"x"}"#;
        let r = interpret(s.as_bytes(), true).report.expect("report");
        assert!(r.is_error);
        assert_eq!(r.subtype.as_deref(), Some("error_max_turns"));
    }

    #[test]
    fn stream_json_last_line() {
        let s = format!("{{\"type\":\"system\"}}\n{{\"type\":\"assistant\"}}\n{SUCCESS}\n");
        let out = interpret(s.as_bytes(), true);
        assert!(out.value.is_string());
        assert_eq!(out.report.expect("report").output_tokens, 12);
    }

    #[test]
    fn plain_text_and_other_json() {
        let out = interpret(b"just text\n", true);
        assert_eq!(out.value, Value::String("just text\n".into()));
        assert!(out.report.is_none());
        let out = interpret(br#"{"answer":42}"#, true);
        assert_eq!(out.value["answer"], 42);
        assert!(out.report.is_none());
    }

    #[test]
    fn truncated_output_is_text() {
        let out = interpret(br#"{"type":"result","is_er"#, false);
        assert!(out.value.is_string());
        assert!(out.report.is_none());
    }
}
