//! A worker's health as its heartbeat file tells it, and the announcements made of it:
//! `worker_unhealthy` once when it turns unhealthy, `worker_recovered` once when it is
//! healthy again. What was announced is kept in the state file, so a restart repeats
//! neither.
//!
//! Unhealthy: the heartbeat is older than its stale limit (HEARTBEAT_STALE_AFTER, or three
//! of the interval the heartbeat states), says `stopped`, says the breaker is open, or is
//! missing or unreadable for a worker that should have one; with a heartbeat per host (a
//! shared engine), healthy while any host's is (see `Live::judged`). Staleness is judged on the
//! heartbeat's age as [`super::freshness`] measures it (on the monotonic clock), so that a
//! step of the wall clock raises no false alarm.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spool::listener::StoredHeartbeat;

/// A heartbeat's interval when it does not state one (the design's default).
pub const DEFAULT_INTERVAL: f64 = 10.0;

pub const STALE: &str = "stale";
pub const STOPPED: &str = "stopped";
pub const CIRCUIT_OPEN: &str = "circuit_open";
pub const NO_HEARTBEAT: &str = "no_heartbeat";
pub const UNREADABLE: &str = "unreadable_heartbeat";

/// A heartbeat as the listener reads it; lenient, so an older worker's file still counts.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Beat {
    pub timestamp: f64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub circuit_state: String,
    #[serde(default)]
    pub heartbeat_interval: Option<f64>,
    #[serde(default)]
    pub queue_size: u64,
    #[serde(default)]
    pub active_tasks: u64,
    #[serde(default)]
    pub retry_waiting: u64,
    #[serde(default)]
    pub max_concurrent: u64,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub version: Box<str>,
    /// When the oldest queued task arrived (seconds since the epoch); absent: none queued.
    #[serde(default)]
    pub oldest_queued_at: Option<f64>,
    /// While the worker is paused: until when, and why.
    #[serde(default)]
    pub paused_until: Option<f64>,
    #[serde(default)]
    pub paused_reason: Option<PauseReason>,
    /// Why the breaker is open or half-open.
    #[serde(default)]
    pub circuit_reason: Option<CircuitReason>,
}

/// A heartbeat's `paused_reason` (small, so that a [`HeartbeatReading`] stays small).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    RateLimited,
    BudgetExhausted,
    #[serde(other)]
    Other,
}

/// A heartbeat's `circuit_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitReason {
    Credential,
    #[serde(other)]
    Failures,
}

impl Beat {
    /// `watcher_circuit_breaker_state`: 0 closed, 1 open, 2 half-open.
    pub fn breaker_gauge(&self) -> i64 {
        match self.circuit_state.as_str() {
            "open" => 1,
            "half_open" => 2,
            _ => 0,
        }
    }

    /// `(rate limited until, spend cap until)`, seconds since the epoch, 0 when not paused so.
    pub fn paused(&self) -> (f64, f64) {
        let until = self.paused_until.filter(|t| t.is_finite()).unwrap_or(0.0);
        // A heartbeat without `paused_reason` (an older worker) says it in its status.
        let why = self.paused_reason.or(match self.status.as_str() {
            "rate_limited" => Some(PauseReason::RateLimited),
            "budget_exhausted" => Some(PauseReason::BudgetExhausted),
            _ => None,
        });
        match why {
            Some(PauseReason::RateLimited) => (until, 0.0),
            Some(PauseReason::BudgetExhausted) => (0.0, until),
            _ => (0.0, 0.0),
        }
    }

    /// The breaker is open or half-open because the agent's credentials were refused.
    pub fn credential_fault(&self) -> bool {
        self.breaker_gauge() != 0 && self.circuit_reason == Some(CircuitReason::Credential)
    }

    /// The age at which this heartbeat is stale.
    pub fn stale_limit(&self, stale_after: Option<Duration>) -> f64 {
        match stale_after {
            Some(d) => d.as_secs_f64(),
            None => {
                // Held to the range of HEARTBEAT_INTERVAL: a hand-written heartbeat stating
                // 1e-300 must not make its worker flap between stale and recovered.
                let span = crate::config::bounds::of("HEARTBEAT_INTERVAL");
                let interval = self.heartbeat_interval.filter(|i| i.is_finite() && *i > 0.0);
                let interval = interval.unwrap_or(DEFAULT_INTERVAL);
                crate::format::records::Heartbeat::stale_limit(
                    span.map_or(interval, |s| interval.clamp(s.min, s.max)),
                )
            }
        }
    }
}

/// What the heartbeat file said when last read.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum HeartbeatReading {
    #[default]
    Missing,
    Beat(Beat),
    Unreadable(String),
}

/// Reads a worker's heartbeat as the spool gave it.
pub fn read(heartbeat: StoredHeartbeat) -> HeartbeatReading {
    let bytes = match heartbeat {
        StoredHeartbeat::Found(b) => b,
        StoredHeartbeat::Missing => return HeartbeatReading::Missing,
        StoredHeartbeat::Unreadable(why) => return HeartbeatReading::Unreadable(why),
    };
    match serde_json::from_slice::<Beat>(&bytes) {
        Ok(b) if b.timestamp.is_finite() => HeartbeatReading::Beat(b),
        Ok(_) => HeartbeatReading::Unreadable("timestamp is not a number".into()),
        Err(e) => HeartbeatReading::Unreadable(format!("not a heartbeat: {e}")),
    }
}

/// The verdict on one worker at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Empty when healthy.
    pub problems: Vec<&'static str>,
    /// What an operator reads.
    pub message: String,
    /// Seconds from the judgement until a healthy worker's heartbeat turns stale.
    pub stale_in: Option<f64>,
    /// Since when the problems are there (the time of a `worker_unhealthy` event).
    pub since: f64,
    /// Heartbeat fresh and not `stopped`: `watcher_worker_up`.
    pub up: bool,
}

/// Judges `reading` at wall-clock time `now`, the heartbeat being `age` seconds old (see
/// [`super::freshness`]). `expected`: the worker should have a heartbeat (it is named in
/// WORKERS, or it had one before); else a missing one is no problem.
pub fn judge(
    reading: &HeartbeatReading,
    expected: bool,
    now: f64,
    age: f64,
    stale_after: Option<Duration>,
) -> Verdict {
    let beat = match reading {
        HeartbeatReading::Beat(b) => b,
        HeartbeatReading::Missing => {
            let problems = if expected { vec![NO_HEARTBEAT] } else { Vec::new() };
            let message = "no heartbeat file".to_string();
            return Verdict { problems, message, stale_in: None, since: now, up: false };
        }
        HeartbeatReading::Unreadable(why) => {
            let message = format!("heartbeat unreadable: {why}");
            return Verdict { problems: vec![UNREADABLE], message, stale_in: None, since: now, up: false };
        }
    };
    let limit = beat.stale_limit(stale_after);
    let stale_at = written_at(beat.timestamp, now, age) + limit;
    let mut problems = Vec::new();
    let mut said = Vec::new();
    let mut since = f64::INFINITY;
    if beat.status == STOPPED {
        problems.push(STOPPED);
        said.push("the worker stopped".to_string());
        since = since.min(beat.timestamp);
    }
    if beat.circuit_state == "open" || beat.status == CIRCUIT_OPEN {
        problems.push(CIRCUIT_OPEN);
        said.push("its circuit breaker is open".to_string());
        since = since.min(beat.timestamp);
    }
    let stale = age > limit;
    if stale {
        problems.push(STALE);
        said.push(format!("heartbeat {age:.1} s old (stale after {limit:.1} s)"));
        since = since.min(stale_at);
    }
    let up = !stale && beat.status != STOPPED;
    let message = if said.is_empty() { "healthy".to_string() } else { said.join("; ") };
    let since = if since.is_finite() { since } else { now };
    Verdict { problems, message, stale_in: (!stale).then_some(limit - age), since, up }
}

/// When a heartbeat `age` seconds old at wall-clock time `now` was written, on the
/// listener's wall clock: its own timestamp when that agrees with the age measured to a
/// second (so that the time of an event about it, and the event's name, do not depend on
/// when the listener read the file); else `now - age`.
pub fn written_at(timestamp: f64, now: f64, age: f64) -> f64 {
    let measured = now - age;
    if (timestamp - measured).abs() <= 1.0 {
        timestamp
    } else {
        measured
    }
}

/// What was last announced about a worker; kept in the state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Announced {
    #[serde(default)]
    pub unhealthy: bool,
    #[serde(default)]
    pub why: Vec<String>,
    /// The id of the `worker_unhealthy` event, named by `worker_recovered`.
    #[serde(default)]
    pub event: Option<String>,
    /// When it turned unhealthy (seconds since the epoch).
    #[serde(default)]
    pub since: Option<f64>,
    /// A heartbeat of this worker has been seen: from then on a missing one is a problem.
    #[serde(default)]
    pub seen_heartbeat: bool,
}

/// A change to announce.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Unhealthy,
    Recovered,
}

/// The announcement due, if any, when the verdict is `v` and `a` was announced.
pub fn change(a: &Announced, v: &Verdict) -> Option<Change> {
    match (a.unhealthy, v.problems.is_empty()) {
        (false, false) => Some(Change::Unhealthy),
        (true, true) => Some(Change::Recovered),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(ts: f64, status: &str, circuit: &str) -> HeartbeatReading {
        HeartbeatReading::Beat(Beat {
            timestamp: ts,
            status: status.into(),
            circuit_state: circuit.into(),
            heartbeat_interval: Some(2.0),
            ..Beat::default()
        })
    }

    /// `judge` with the heartbeat as old as its own timestamp says.
    fn judge_at(
        reading: &HeartbeatReading,
        expected: bool,
        now: f64,
        stale_after: Option<Duration>,
    ) -> Verdict {
        let age = match reading {
            HeartbeatReading::Beat(b) => now - b.timestamp,
            _ => 0.0,
        };
        judge(reading, expected, now, age, stale_after)
    }

    #[test]
    fn fresh_idle_heartbeat_is_healthy_until_three_intervals() {
        let v = judge_at(&beat(100.0, "idle", "closed"), true, 105.0, None);
        assert!(v.problems.is_empty() && v.up, "{v:?}");
        assert_eq!(v.stale_in, Some(1.0));
        let v = judge_at(&beat(100.0, "idle", "closed"), true, 106.5, None);
        assert_eq!(v.problems, vec![STALE]);
        assert_eq!(v.since, 106.0);
        assert!(!v.up);
        let v = judge_at(&beat(100.0, "idle", "closed"), true, 106.5, Some(Duration::from_secs(60)));
        assert!(v.problems.is_empty(), "HEARTBEAT_STALE_AFTER wins");
    }

    #[test]
    fn staleness_is_judged_on_the_age_measured_not_on_the_timestamp() {
        // Written a day "ago" by the wall clock, seen a second ago: healthy.
        let v = judge(&beat(100.0, "idle", "closed"), true, 86_500.0, 1.0, None);
        assert!(v.problems.is_empty(), "{v:?}");
        // Stamped a day ahead, seen 7 s ago: stale since a second ago, by the listener's clock.
        let v = judge(&beat(186_400.0, "idle", "closed"), true, 100.0, 7.0, None);
        assert_eq!(v.problems, vec![STALE]);
        assert_eq!(v.since, 99.0);
    }

    #[test]
    fn the_interval_a_heartbeat_states_is_held_to_the_settings_range() {
        let beat = |i: f64| Beat { heartbeat_interval: Some(i), ..Beat::default() };
        assert_eq!(beat(1e-300).stale_limit(None), 3.0 * 0.1);
        assert_eq!(beat(1e300).stale_limit(None), 3.0 * 3600.0);
        assert_eq!(beat(2.0).stale_limit(None), 6.0);
    }

    #[test]
    fn stopped_and_open_breaker_are_unhealthy_at_once() {
        let v = judge_at(&beat(100.0, "stopped", "closed"), true, 100.1, None);
        assert_eq!((v.problems.clone(), v.up), (vec![STOPPED], false));
        let v = judge_at(&beat(100.0, "circuit_open", "open"), true, 100.1, None);
        assert_eq!((v.problems.clone(), v.up), (vec![CIRCUIT_OPEN], true));
        assert_eq!(v.since, 100.0);
    }

    #[test]
    fn a_missing_heartbeat_matters_only_when_expected() {
        assert!(judge_at(&HeartbeatReading::Missing, false, 1.0, None).problems.is_empty());
        assert_eq!(judge_at(&HeartbeatReading::Missing, true, 1.0, None).problems, vec![NO_HEARTBEAT]);
        assert_eq!(
            judge_at(&HeartbeatReading::Unreadable("x".into()), false, 1.0, None).problems,
            vec![UNREADABLE]
        );
    }

    #[test]
    fn each_change_is_announced_once() {
        let sick = judge_at(&beat(0.0, "stopped", "closed"), true, 1.0, None);
        let well = judge_at(&beat(0.0, "idle", "closed"), true, 1.0, None);
        let mut a = Announced::default();
        assert_eq!(change(&a, &well), None);
        assert_eq!(change(&a, &sick), Some(Change::Unhealthy));
        a.unhealthy = true;
        assert_eq!(change(&a, &sick), None);
        assert_eq!(change(&a, &well), Some(Change::Recovered));
    }

    #[test]
    fn heartbeats_are_read_leniently() {
        let found = |text: &str| read(StoredHeartbeat::Found(text.as_bytes().to_vec()));
        let HeartbeatReading::Beat(b) = found(r#"{"timestamp": 12.5, "status": "busy", "queue_size": 4}"#)
        else {
            panic!("not read")
        };
        assert_eq!((b.timestamp, b.queue_size, b.breaker_gauge()), (12.5, 4, 0));
        let text = r#"{"timestamp": 1, "circuit_state": "half_open", "circuit_reason": "credential",
                       "paused_reason": "a_reason_of_later", "paused_until": 9, "version": "9.9"}"#;
        let HeartbeatReading::Beat(b) = found(text) else { panic!("not read") };
        assert_eq!((b.credential_fault(), b.paused(), &*b.version), (true, (0.0, 0.0), "9.9"));
        assert!(matches!(found("{}"), HeartbeatReading::Unreadable(_)));
        assert_eq!(read(StoredHeartbeat::Missing), HeartbeatReading::Missing);
        assert_eq!(
            read(StoredHeartbeat::Unreadable("a FIFO".into())),
            HeartbeatReading::Unreadable("a FIFO".into())
        );
    }
}
