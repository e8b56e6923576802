//! What an agent run's end means, and so what the daemon does next: the rules in one table.
//!
//! | class        | examples                                            | the daemon          |
//! |--------------|-----------------------------------------------------|---------------------|
//! | success      | exit 0, no `is_error`                               | result `completed`  |
//! | failed       | other non-zero exits, signals, timeouts, `is_error` | retry with backoff, until the same failure repeats |
//! | rate-limited | usage or rate limit (reset time when given)         | pause the worker until the reset; run not charged |
//! | permanent    | max turns, max budget, structured output, denials   | dead letter at once, reason = subtype |
//! | outage       | credentials (401/403, not logged in), network down, API 5xx/529 | hold the queue (breaker); run not charged |
//!
//! The inputs are the exit, the Claude result object when there is one, and the stderr tail.
//! What the agent's service did is read from the result object's structured fields first, and
//! from the CLI's own phrasing only when they say nothing ([`api`]): a successful run is never
//! reclassified because its output mentions "429", and the words of a tool the agent ran
//! ("You are not logged into any GitHub hosts", "memory limit reached") never match.

pub(crate) mod api;

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::reason::Reason;
use super::Output;
use crate::runner::Exit;
use api::ApiState;

/// What to do with the task after this run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Class {
    Success,
    /// A failure of this task: retry with backoff; a failure that repeats itself stops early.
    Failed(Reason),
    /// Wait until the reset (wall-clock), or a default pause when none is usable.
    RateLimited {
        reset_at: Option<SystemTime>,
    },
    /// Retrying cannot help: dead-letter now.
    Permanent(Reason),
    /// The agent's service cannot be used by any task: hold the whole queue, charge nothing.
    Outage(Cause),
}

/// Why the agent's service is unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Not logged in, a bad or expired key or token, no permission, no credit.
    Credential,
    /// The API cannot be reached.
    Network,
    /// The API answers with server errors (5xx, overloaded).
    Service,
}

impl Cause {
    /// The `reason` of the uncharged run.
    pub fn reason(self) -> Reason {
        match self {
            Cause::Credential => Reason::Credential,
            Cause::Network => Reason::Network,
            Cause::Service => Reason::Service,
        }
    }

    /// The heartbeat's `circuit_reason`, the log's CAUSE: the word of its reason.
    pub fn as_str(self) -> &'static str {
        self.reason().as_str()
    }

    /// What an operator does about it, for the journal.
    pub fn advice(self) -> &'static str {
        match self {
            Cause::Credential => {
                "log the agent in as the worker's user (`claude auth login`, or `claude setup-token`), or set ANTHROPIC_API_KEY in the worker's env file, then wait for the next trial or restart the worker"
            }
            Cause::Network => {
                "check the host's network, DNS, proxy (HTTPS_PROXY) and firewall, and ANTHROPIC_BASE_URL if set"
            }
            Cause::Service => {
                "the agent's API reports server errors or overload; nothing to fix here: the queue waits for it to recover"
            }
        }
    }
}

/// A run's class and a message for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub class: Class,
    pub message: String,
}

impl Verdict {
    /// Why the run did not succeed; `None` for a success.
    pub fn reason(&self) -> Option<Reason> {
        match self.class {
            Class::Success => None,
            Class::Failed(r) | Class::Permanent(r) => Some(r),
            Class::RateLimited { .. } => Some(Reason::RateLimited),
            Class::Outage(cause) => Some(cause.reason()),
        }
    }
}

/// What to make of exit 0 with no output at all in under a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmptyOutput {
    /// A success (a no-op agent is allowed).
    Accept,
    /// A success, logged as suspect.
    Warn,
    /// A failure (`empty_output`).
    Fail,
}

/// Everything the rules look at.
#[derive(Debug)]
pub struct Run<'a> {
    pub exit: Exit,
    pub timed_out: bool,
    pub output: &'a Output,
    pub stdout_bytes: u64,
    pub stderr_tail: &'a str,
    pub duration: Duration,
}

/// The reason of a Claude result subtype that no retry can fix.
fn permanent_subtype(subtype: &str) -> Option<Reason> {
    Reason::parse(subtype)
        .filter(|r| matches!(r, Reason::MaxTurns | Reason::MaxBudget | Reason::MaxStructuredOutputRetries))
}

fn verdict(class: Class, message: impl Into<String>) -> Verdict {
    Verdict { class, message: message.into() }
}

/// The agent's stdout when it was not a result object (its last 4 KiB).
fn free_stdout<'a>(run: &Run<'a>) -> Option<&'a str> {
    if run.output.result_object.is_some() {
        return None;
    }
    let Value::String(s) = &run.output.value else { return None };
    let mut start = s.len().saturating_sub(4096);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    Some(&s[start..])
}

/// The agent's own words about what went wrong: its result text when it reported an error,
/// its stdout when it was not JSON, and its stderr tail.
fn error_text(run: &Run) -> String {
    let mut text = String::new();
    if let Some(r) = run.output.result_object.as_ref().and_then(|o| o.get("result")).and_then(Value::as_str) {
        text.push_str(r);
        text.push('\n');
    }
    if let Some(s) = free_stdout(run) {
        text.push_str(s);
        text.push('\n');
    }
    text.push_str(run.stderr_tail);
    text
}

/// What the run says about the agent's service: the result object's fields, else the CLI's
/// phrasing in an error result's text, else at the start of a line of its free output.
fn api_state(run: &Run) -> Option<ApiState> {
    if let Some(obj) = &run.output.result_object {
        let is_error = obj.get("is_error").and_then(Value::as_bool) == Some(true);
        let from_result = || obj.get("result").and_then(Value::as_str).and_then(api::phrase);
        if let Some(state) = api::structured(obj).or_else(|| is_error.then(from_result).flatten()) {
            return Some(state);
        }
    }
    free_stdout(run).and_then(api::lines).or_else(|| api::lines(run.stderr_tail))
}

/// One line of the error text, for messages and for telling repeated failures apart.
pub fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

pub fn classify(run: &Run, empty: EmptyOutput) -> Verdict {
    let report = run.output.report.as_ref();
    let is_error = report.is_some_and(|r| r.is_error);
    if run.exit == Exit::Code(0) && !is_error && !run.timed_out {
        let suspect = run.stdout_bytes == 0 && run.duration < Duration::from_secs(1);
        if suspect && empty == EmptyOutput::Fail {
            return verdict(
                Class::Failed(Reason::EmptyOutput),
                "the agent exited 0 without any output in under a second",
            );
        }
        return verdict(Class::Success, "");
    }
    if run.timed_out {
        return verdict(
            Class::Failed(Reason::Timeout),
            "no outcome within the time limit; the agent was killed",
        );
    }
    let text = error_text(run);
    let line = first_line(&text);
    if let Some((subtype, reason)) =
        report.and_then(|r| r.subtype.as_deref()).and_then(|s| Some((s, permanent_subtype(s)?)))
    {
        return verdict(Class::Permanent(reason), format!("the agent stopped: {subtype}"));
    }
    let denials = run
        .output
        .result_object
        .as_ref()
        .and_then(|o| o.get("permission_denials"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if is_error && denials {
        return verdict(
            Class::Permanent(Reason::PermissionDenied),
            format!("the agent was denied a tool: {line}"),
        );
    }
    if let Some(state) = api_state(run) {
        return match state {
            ApiState::RateLimited => {
                let reset_at = reset_time(run.output.result_object.as_ref(), &text, SystemTime::now());
                verdict(
                    Class::RateLimited { reset_at },
                    format!("the agent hit a usage or rate limit: {line}"),
                )
            }
            ApiState::Credential => outage(Cause::Credential, "the agent cannot authenticate", line),
            ApiState::Network => outage(Cause::Network, "the agent cannot reach its API", line),
            ApiState::Service => outage(Cause::Service, "the agent's API is failing", line),
        };
    }
    let detail = if line.is_empty() { String::new() } else { format!(": {line}") };
    match run.exit {
        Exit::Code(0) => verdict(
            Class::Failed(Reason::AgentError),
            format!(
                "the agent reported an error ({}){detail}",
                report.and_then(|r| r.subtype.as_deref()).unwrap_or("is_error")
            ),
        ),
        Exit::Code(c) => {
            verdict(Class::Failed(Reason::ExitCode), format!("the agent exited with status {c}{detail}"))
        }
        Exit::Signal(s) => {
            verdict(Class::Failed(Reason::Signal), format!("the agent was killed by signal {s}{detail}"))
        }
    }
}

fn outage(cause: Cause, what: &str, line: &str) -> Verdict {
    verdict(Class::Outage(cause), format!("{what}: {line}"))
}

/// When a usage or rate limit resets, if the output says: `…limit reached|<epoch>` (the CLI's
/// own form), a `resetsAt` / `resets_at` / `reset_at` field (epoch seconds or milliseconds,
/// or RFC 3339), a `retry_after` field (seconds), or "resets at <RFC 3339>" / "resets in N
/// seconds|minutes|hours" or "resets 9:40pm (UTC)" in the text.
pub fn reset_time(obj: Option<&Value>, text: &str, now: SystemTime) -> Option<SystemTime> {
    let from_epoch = |secs: f64| {
        let secs = if secs > 1e12 { secs / 1000.0 } else { secs };
        crate::sys::clock::from_epoch_f64(secs)
    };
    if let Some(obj) = obj {
        for key in ["resetsAt", "resets_at", "reset_at", "resetAt"] {
            match find_key(obj, key) {
                Some(Value::Number(n)) => return n.as_f64().and_then(from_epoch),
                Some(Value::String(s)) => {
                    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
                        return Some(t);
                    }
                }
                _ => {}
            }
        }
        for key in ["retry_after", "retryAfter"] {
            if let Some(secs) =
                find_key(obj, key).and_then(Value::as_f64).filter(|s| s.is_finite() && *s >= 0.0)
            {
                return Some(now + Duration::from_secs_f64(secs.min(1e7)));
            }
        }
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.find("limit reached|") {
        let digits: String = text[i + 14..].chars().take_while(char::is_ascii_digit).collect();
        if let Some(t) = digits.parse::<f64>().ok().and_then(from_epoch) {
            return Some(t);
        }
    }
    for marker in ["resets at ", "reset at "] {
        if let Some(i) = lower.find(marker) {
            let word = text[i + marker.len()..].split_whitespace().next().unwrap_or("");
            if let Ok(t) = humantime::parse_rfc3339_weak(word.trim_end_matches(['.', ',', ')'])) {
                return Some(t);
            }
        }
    }
    for marker in ["resets in ", "reset in ", "try again in "] {
        if let Some(i) = lower.find(marker) {
            let mut words = lower[i + marker.len()..].split_whitespace();
            let n: Option<f64> = words.next().and_then(|w| w.parse().ok());
            let unit = match words.next().unwrap_or("").trim_end_matches(['.', ',', ')']) {
                "second" | "seconds" | "s" => 1.0,
                "minute" | "minutes" | "min" => 60.0,
                "hour" | "hours" | "h" => 3600.0,
                _ => continue,
            };
            if let Some(n) = n.filter(|n| n.is_finite() && *n >= 0.0) {
                return Some(now + Duration::from_secs_f64((n * unit).min(1e7)));
            }
        }
    }
    clock_reset(text, now)
}

/// "resets 9:40pm (UTC)", "resets 3am (UTC)" (a subscription's 5-hour limit): the next such
/// time when it is at most 6 hours ahead, else the last one (in the past: the caller then
/// pauses for its default rather than guess at a day). Only UTC: the CLI writes the host's
/// own zone, and naming any other needs a time-zone database.
fn clock_reset(text: &str, now: SystemTime) -> Option<SystemTime> {
    let (_, rest) = text.split_once("resets ")?;
    let (time, zone) = rest.split_once(' ')?;
    if !zone.starts_with("(UTC)") {
        return None;
    }
    let (hm, pm) = match time.strip_suffix("pm") {
        Some(t) => (t, true),
        None => (time.strip_suffix("am")?, false),
    };
    let (h, m) = match hm.split_once(':') {
        Some((h, m)) => (h.parse::<u64>().ok()?, m.parse::<u64>().ok()?),
        None => (hm.parse::<u64>().ok()?, 0),
    };
    if !(1..=12).contains(&h) || m > 59 {
        return None;
    }
    let of_day = (h % 12 + if pm { 12 } else { 0 }) * 3600 + m * 60;
    let now_s = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    // The last such time at or before now, and the next one after it.
    let today = now_s - now_s % 86_400 + of_day;
    let last = if today <= now_s { today } else { today - 86_400 };
    let next = last + 86_400;
    let at = if next - now_s <= 6 * 3600 { next } else { last };
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(at))
}

fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => map.get(key).or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
