//! ResultReading a result for what the listener needs of it: outcome, timings, metadata and the
//! agent's figures. The agent's output (up to MAX_OUTPUT_BYTES) is skipped by the parser,
//! never held.
//!
//! Results are the workers'; whatever a backend finds where results go is read as untrusted:
//! bounded in size, and a parse error is a value, not a crash. (How a backend opens one
//! safely, never through a symlink nor a FIFO, is its own business.)

use std::io::{BufReader, Read};

use serde::Deserialize;
use serde_json::Value;

use crate::format::records::{COMPLETED, FAILED};
use crate::format::task::is_valid_id;

/// Largest result read; a bigger file is unreadable (results are bounded by
/// MAX_OUTPUT_BYTES, 1 MiB by default, plus their other fields).
pub const MAX_RESULT_BYTES: u64 = crate::format::records::MAX_RECORD_BYTES;
/// Results up to this size are read into memory to be parsed.
const IN_MEMORY_BYTES: u64 = 4 << 20;
/// Longest batch name taken from `metadata.batch`.
pub const MAX_BATCH_NAME: usize = 256;

/// The agent's figures in a result (`agent`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Agent {
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    #[serde(default)]
    pub num_turns: Option<u64>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    task_id: Option<String>,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    attempts: Option<u64>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    duration_seconds: Option<f64>,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    agent: Option<Agent>,
}

/// One result, as far as the listener is concerned.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub task_id: String,
    /// `completed` or `failed`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub exit_code: Option<i64>,
    pub attempts: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_seconds: Option<f64>,
    pub metadata: Value,
    pub agent: Option<Agent>,
    /// `metadata.batch` (a string, or a number as text) and `metadata.batch_size`.
    pub batch: Option<(String, Option<u64>)>,
}

/// What reading a result file gave.
#[derive(Debug)]
pub enum ResultReading {
    Result(Box<Summary>),
    Unreadable(String),
}

/// Reads a result of `len` bytes from `reader`; `stem` is its name without the suffix (the
/// task id when the result has none).
pub fn read(mut reader: impl Read, len: u64, stem: &str) -> ResultReading {
    if len > MAX_RESULT_BYTES {
        return ResultReading::Unreadable("larger than 256 MiB".into());
    }
    // A usual result is read whole and parsed from memory (several times faster than from a
    // reader); a very large one is streamed, its output skipped without being held.
    let parsed = if len <= IN_MEMORY_BYTES {
        let mut bytes = Vec::with_capacity(len as usize + 1);
        match reader.read_to_end(&mut bytes) {
            Ok(_) => serde_json::from_slice::<Raw>(&bytes),
            Err(e) => return ResultReading::Unreadable(e.to_string()),
        }
    } else {
        serde_json::from_reader(BufReader::new(reader.take(MAX_RESULT_BYTES)))
    };
    let raw = match parsed {
        Ok(r) => r,
        Err(e) => return ResultReading::Unreadable(format!("not a result: {e}")),
    };
    match summarise(raw, stem) {
        Ok(s) => ResultReading::Result(Box::new(s)),
        Err(why) => ResultReading::Unreadable(why),
    }
}

fn summarise(raw: Raw, stem: &str) -> Result<Summary, String> {
    let status = match raw.status.as_str() {
        COMPLETED => COMPLETED,
        FAILED => FAILED,
        other => return Err(format!("status {other:?} is neither completed nor failed")),
    };
    let task_id = raw.task_id.filter(|id| is_valid_id(id)).unwrap_or_else(|| stem.to_string());
    Ok(Summary {
        batch: batch_of(&raw.metadata),
        task_id,
        status,
        reason: raw.reason.filter(|_| status == FAILED),
        exit_code: raw.exit_code,
        attempts: raw.attempts,
        started_at: raw.started_at,
        finished_at: raw.finished_at,
        duration_seconds: raw.duration_seconds.filter(|d| d.is_finite() && *d >= 0.0),
        metadata: raw.metadata,
        agent: raw.agent,
    })
}

/// `metadata.batch` as a name (a non-empty string up to 256 bytes, or an integer), with
/// `metadata.batch_size` when it is a whole number >= 1.
fn batch_of(metadata: &Value) -> Option<(String, Option<u64>)> {
    let name = match metadata.get("batch")? {
        Value::String(s) if !s.is_empty() && s.len() <= MAX_BATCH_NAME => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    let size = metadata.get("batch_size").and_then(|v| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Some((name, size.filter(|n| *n >= 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str, stem: &str) -> ResultReading {
        read(text.as_bytes(), text.len() as u64, stem)
    }

    #[test]
    fn a_result_is_summarised_without_its_output() {
        let text = r#"{"task_id":"t1","worker":"marie","status":"failed","reason":"timeout","exit_code":null,
               "output":{"huge":[1,2,3]},"attempts":3,"finished_at":"2026-01-01T00:00:00Z",
               "duration_seconds":12.5,"metadata":{"batch":"b1","batch_size":"3"},
               "agent":{"total_cost_usd":0.5,"input_tokens":10}}"#;
        let ResultReading::Result(s) = of(text, "t1") else { panic!("not read") };
        assert_eq!((s.task_id.as_str(), s.status, s.reason.as_deref()), ("t1", "failed", Some("timeout")));
        assert_eq!(s.duration_seconds, Some(12.5));
        assert_eq!(s.batch, Some(("b1".to_string(), Some(3))));
        assert_eq!(s.agent.as_ref().map(|a| a.input_tokens), Some(10));
    }

    #[test]
    fn what_is_not_a_result_is_unreadable() {
        for text in ["not json", r#"{"status":"maybe"}"#, r#"[1,2]"#, r#"{"task_id":"d"}"#] {
            assert!(matches!(of(text, "x"), ResultReading::Unreadable(_)), "{text}");
        }
        assert!(matches!(read(&b"{}"[..], MAX_RESULT_BYTES + 1, "x"), ResultReading::Unreadable(_)));
    }

    #[test]
    fn a_large_result_is_streamed() {
        let pad = "x".repeat(IN_MEMORY_BYTES as usize);
        let text = format!(r#"{{"status":"completed","output":"{pad}"}}"#);
        let ResultReading::Result(s) = of(&text, "big") else { panic!("not read") };
        assert_eq!((s.task_id.as_str(), s.status), ("big", "completed"));
    }

    #[test]
    fn the_stem_stands_in_for_a_bad_id_and_odd_batches_are_ignored() {
        let ResultReading::Result(s) =
            of(r#"{"task_id":"../x","status":"completed","metadata":{"batch":{}}}"#, "x")
        else {
            panic!("not read")
        };
        assert_eq!((s.task_id.as_str(), s.batch.clone(), s.reason.clone()), ("x", None, None));
        let ResultReading::Result(s) =
            of(r#"{"status":"completed","metadata":{"batch":7,"batch_size":0}}"#, "y")
        else {
            panic!("not read")
        };
        assert_eq!(s.batch, Some(("7".to_string(), None)));
    }
}
