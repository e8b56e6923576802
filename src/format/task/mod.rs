//! The task file: parsing, validation, and the daemon's own state carried inside it.
//!
//! A task's attempt count and failure history live in the task file itself, under the reserved
//! key `_watcher`, rewritten durably on every failed attempt and every reclaim. So the state
//! survives any crash, travels with the task when it is re-queued, and needs no side files.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The reserved key holding [`State`] in a task file.
pub const STATE_KEY: &str = "_watcher";

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`: safe as a file name, never a path.
pub fn is_valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

const ID_RULE: &str = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit";

/// One failed attempt, as kept in the history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub attempt: u32,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub duration_seconds: f64,
    #[serde(default)]
    pub stderr_tail: String,
}

/// The agent session of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// A UUID, passed with AGENT_SESSION_FLAG (a new session) or AGENT_RESUME_FLAG.
    pub id: String,
    /// An agent was started with it: the next run resumes it.
    #[serde(default)]
    pub started: bool,
}

/// One agent run of a task, as results and dead letters list them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The attempt it was (a run not charged keeps the number of the attempt it stood for).
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// It continued the session of an earlier run (AGENT_RESUME_FLAG).
    #[serde(default, skip_serializing_if = "is_false")]
    pub resumed: bool,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub duration_seconds: f64,
    /// How it ended: `completed`, `cancelled`, `session_missing`, `shutdown`, or the reason of
    /// a failure or a hold (`timeout`, `exit_code`, `rate_limited`, ...).
    pub outcome: String,
    /// What the agent reported it cost (`total_cost_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// Runs kept in a task's state (the oldest are dropped).
pub const RUNS_KEPT: usize = 50;

/// The daemon's state of a task, persisted under `_watcher`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Attempts that ran to an outcome (a reclaim or a shutdown is not one).
    #[serde(default)]
    pub attempts: u32,
    /// Times the task was found in flight after the daemon died.
    #[serde(default)]
    pub reclaims: u32,
    /// Runs not charged at all: stopped by a rate limit or an outage of the agent's service.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uncharged: u32,
    /// The last run was not charged (a rate limit or an outage of the agent's service held
    /// it): until the next charged run starts, no time is charged to the task either.
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_hold: bool,
    /// Wall-clock time (epoch seconds) before which the next attempt must not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<f64>,
    /// When the first attempt started (wall clock, for the record; not for any limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_started_at: Option<String>,
    /// Seconds charged to the task, what MAX_TASK_WALL_TIME limits: the time a worker held it
    /// claimed (its runs and its waits for a retry), counted on the monotonic clock, without
    /// the time a rate limit or an outage held it back. A step of the wall clock never adds
    /// to it, and neither does time no worker held the task (stopped, or queued behind
    /// others).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub charged_seconds: f64,
    #[serde(default)]
    pub history: Vec<Failure>,
    /// The agent's session (AGENT_SESSION_FLAG), see `crate::agent::session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// Every agent run, oldest first (the last 50): its attempt, session and cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Run>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl State {
    /// The runs charged to the task: attempts and reclaims. The runaway guard (MAX_TASK_RUNS)
    /// caps it. Uncharged runs (a rate limit, an outage: trials of the whole worker, not of
    /// the task) are not counted, so a task held however long is never dead-lettered for it.
    pub fn runs(&self) -> u32 {
        self.attempts.saturating_add(self.reclaims)
    }
}

/// A valid task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub id: String,
    pub description: String,
    pub timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    /// Passed to the agent as its turn limit (AGENT_MAX_TURNS_FLAG).
    pub max_turns: Option<u32>,
    /// Passed to the agent as its spending limit (AGENT_MAX_BUDGET_FLAG).
    pub max_budget_usd: Option<f64>,
    /// The submitted object, unknown fields included, without `_watcher`.
    pub doc: Map<String, Value>,
    pub state: State,
    /// Since when time is charged to the task in this process (it claimed it, and it is not
    /// on hold): `state.charged_seconds` counts up from here. `None`: nothing is charged now.
    pub charging_since: Option<Instant>,
}

/// Why a task is rejected with reason `invalid`. The message names the exact problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    NameNotUtf8(String),
    NotRegular(&'static str),
    TooLarge { size: u64, max: u64 },
    LineTooLong { max: u64 },
    Unreadable(String),
    NotJson(String),
    NotObject(&'static str),
    BadId(String),
    MissingDescription,
    BadField { field: &'static str, expected: &'static str },
    WrongWorker { named: String, this: String },
    Duplicate { id: String, of: &'static str },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NameNotUtf8(lossy) => write!(f, "file name {lossy:?} is not valid UTF-8"),
            Invalid::NotRegular(kind) => {
                write!(f, "not a regular file but a {kind}; it was not opened")
            }
            Invalid::TooLarge { size, max } => {
                write!(f, "file is {size} bytes, larger than MAX_TASK_BYTES={max}")
            }
            Invalid::LineTooLong { max } => write!(
                f,
                "a line of the pipe is longer than MAX_TASK_BYTES={max}; it was dropped (its start is in raw_preview)"
            ),
            Invalid::Unreadable(e) => write!(f, "cannot read the file: {e}"),
            Invalid::NotJson(e) => write!(f, "not valid JSON: {e}"),
            Invalid::NotObject(kind) => write!(f, "not a JSON object but {kind}"),
            Invalid::BadId(id) => write!(f, "task_id {id:?} is invalid: expected {ID_RULE}"),
            Invalid::MissingDescription => f.write_str("\"description\" is missing"),
            Invalid::BadField { field, expected } => write!(f, "{field:?} must be {expected}"),
            Invalid::WrongWorker { named, this } => {
                write!(f, "\"worker\" is {named:?} but this queue belongs to {this:?}")
            }
            Invalid::Duplicate { id, of } => write!(f, "task_id {id:?} duplicates a task {of}"),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Task {
    /// Parses and validates a task file's bytes. `stem` is the file name without `.json`,
    /// the default id; `worker` is this daemon's worker name.
    pub fn parse(bytes: &[u8], stem: &str, worker: &str) -> Result<Task, Invalid> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| Invalid::NotJson(e.to_string()))?;
        let Value::Object(mut doc) = value else {
            return Err(Invalid::NotObject(kind_of(&value)));
        };
        let id = match doc.get("task_id") {
            None | Some(Value::Null) => stem.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(Invalid::BadId(v.to_string())),
        };
        if !is_valid_id(&id) {
            return Err(Invalid::BadId(id));
        }
        let description = match doc.get("description") {
            None | Some(Value::Null) => return Err(Invalid::MissingDescription),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                return Err(Invalid::BadField { field: "description", expected: "a non-empty string" })
            }
        };
        match doc.get("worker") {
            None | Some(Value::Null) => {}
            Some(Value::String(w)) if w == worker => {}
            Some(Value::String(w)) => {
                return Err(Invalid::WrongWorker { named: w.clone(), this: worker.to_string() })
            }
            Some(_) => return Err(Invalid::BadField { field: "worker", expected: "a string" }),
        }
        let timeout = match doc.get("timeout") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|t| t.is_finite() && *t > 0.0 && *t <= 31_536_000.0)
                    .map(Duration::from_secs_f64)
                    .ok_or(Invalid::BadField { field: "timeout", expected: "a number of seconds > 0" })?,
            ),
        };
        let max_retries = match doc.get("max_retries") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(v.as_u64().filter(|n| *n <= 1000).map(|n| n as u32).ok_or(Invalid::BadField {
                    field: "max_retries",
                    expected: "a whole number from 0 to 1000",
                })?)
            }
        };
        let state = match doc.remove(STATE_KEY) {
            None | Some(Value::Null) => State::default(),
            Some(v) => serde_json::from_value(v).map_err(|_| Invalid::BadField {
                field: STATE_KEY,
                expected: "the daemon's own state object",
            })?,
        };
        doc.insert("task_id".into(), Value::String(id.clone()));
        let max_turns = match doc.get("max_turns") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| (1..=100_000).contains(n)).map(|n| n as u32).ok_or(
                Invalid::BadField { field: "max_turns", expected: "a whole number from 1 to 100000" },
            )?),
        };
        let max_budget_usd = match doc.get("max_budget_usd") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_f64().filter(|x| x.is_finite() && *x > 0.0).ok_or(Invalid::BadField {
                field: "max_budget_usd",
                expected: "a number of US dollars > 0",
            })?),
        };
        Ok(Task {
            id,
            description,
            timeout,
            max_retries,
            max_turns,
            max_budget_usd,
            doc,
            state,
            charging_since: None,
        })
    }

    /// `metadata`, carried into the result untouched.
    pub fn metadata(&self) -> Value {
        self.doc.get("metadata").cloned().unwrap_or(Value::Null)
    }

    /// The time charged to the task: what was saved, and since this process charges it.
    pub fn charged(&self) -> Duration {
        let saved = Duration::try_from_secs_f64(self.state.charged_seconds).unwrap_or_default();
        saved + self.charging_since.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// This process holds the task (claimed, or read back at start-up): its time is charged
    /// from `now`, unless its last run was held by a rate limit or an outage.
    pub fn start_charging(&mut self, now: Instant) {
        self.charging_since = (!self.state.on_hold).then_some(now);
    }

    /// A run not charged started at `run_started`: the time since is not the task's.
    pub fn hold(&mut self, run_started: Instant) {
        if let Some(since) = self.charging_since.take() {
            let d = run_started.saturating_duration_since(since);
            self.state.charged_seconds += d.as_secs_f64();
        }
        self.state.on_hold = true;
    }

    /// A charged run started at `run_started`: a hold under way is over, and its time is the
    /// task's again from then.
    pub fn end_hold(&mut self, run_started: Instant) {
        if std::mem::take(&mut self.state.on_hold) {
            self.charging_since = Some(run_started);
        }
    }

    /// The file's bytes: the submitted object plus the current state (its time held as of now).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut doc = self.doc.clone();
        let mut state = self.state.clone();
        state.charged_seconds = self.charged().as_secs_f64();
        if state != State::default() {
            doc.insert(STATE_KEY.into(), serde_json::to_value(&state).unwrap_or(Value::Null));
        }
        let mut out = serde_json::to_vec_pretty(&Value::Object(doc)).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests;
