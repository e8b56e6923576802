//! `watcherctl tasks W`: every task of a worker that has no result yet, oldest first: queued,
//! starting (claimed a moment ago), running (attempt, agent pid, time running, session),
//! waiting for a retry (its due time), or held by the breaker, a rate limit, the spend cap or
//! a stop (why, and until when).
//!
//! Nothing here asks the worker: the backend lists the queue and the claimed tasks
//! ([`ControlSpool::tasks`]); a claimed task's saved state says when its retry is due, its claim
//! receipt (written at every start, never synced: it costs the worker nothing more) which
//! attempt runs, under which pid and session, since when; the heartbeat says what holds the
//! worker. A receipt whose run the saved state already lists has ended: the task waits.

use serde_json::{json, Value};

use super::args::TasksArgs;
use super::exit::{CtlResult, OK};
use super::output::{age, print, print_json, table};
use crate::format::records::Heartbeat;
use crate::spool::control::{ControlSpool, Listed, Pending};
use crate::sys::clock;

/// What keeps the worker from starting any task.
#[derive(Clone, Debug, PartialEq)]
struct Hold {
    /// `breaker`, `rate_limit`, `spend_cap` or `stopping`.
    by: &'static str,
    /// The breaker's cause (`failures`, `credential`, `network`, `service`), if it is one.
    reason: Option<String>,
    /// Until when, in seconds since the epoch, when known.
    until: Option<f64>,
}

/// What holds every start of the worker whose heartbeat this is.
fn hold_of(hb: &Heartbeat) -> Option<Hold> {
    if hb.status == "stopping" {
        return Some(Hold { by: "stopping", reason: None, until: None });
    }
    match hb.paused_reason.as_deref() {
        Some("rate_limited") => return Some(Hold { by: "rate_limit", reason: None, until: hb.paused_until }),
        Some(_) => return Some(Hold { by: "spend_cap", reason: None, until: hb.paused_until }),
        None => {}
    }
    match hb.circuit_state.as_str() {
        "open" | "half_open" => {
            Some(Hold { by: "breaker", reason: hb.circuit_reason.clone(), until: hb.circuit_open_until })
        }
        _ => None,
    }
}

/// One task as shown.
#[derive(Debug)]
struct Row {
    task: Listed,
    state: &'static str,
    attempt: Option<u32>,
    pid: Option<u32>,
    started_at: Option<String>,
    /// Seconds its agent has run.
    running_for: Option<f64>,
    session: Option<String>,
    resumed: bool,
    /// When its retry is due, in seconds since the epoch.
    due: Option<f64>,
    held: Option<Hold>,
}

/// Whether a claimed task's receipt is of a run under way: a start its saved state does not
/// list as ended.
fn running(t: &Listed) -> bool {
    let Some(r) = &t.receipt else { return false };
    let state = t.state.clone().unwrap_or_default();
    r.attempt > state.attempts && !state.runs.iter().any(|run| run.started_at == r.claimed_at)
}

/// Where a task is, from what the backend listed and what holds the worker (`None`: nothing,
/// or it is not running).
fn row(task: Listed, hold: Option<&Hold>, now: f64) -> Row {
    let state = task.state.clone().unwrap_or_default();
    let mut r = Row {
        state: "queued",
        attempt: None,
        pid: None,
        started_at: None,
        running_for: None,
        session: state.session.as_ref().map(|s| s.id.clone()),
        resumed: false,
        due: None,
        held: None,
        task,
    };
    if r.task.pending == Pending::InFlight && running(&r.task) {
        if let Some(rc) = r.task.receipt.clone() {
            let started = humantime::parse_rfc3339_weak(&rc.claimed_at).ok().map(clock::epoch_f64);
            r.state = "running";
            r.attempt = Some(rc.attempt);
            r.pid = Some(rc.agent_pid);
            r.running_for = started.map(|s| (now - s).max(0.0));
            r.started_at = Some(rc.claimed_at);
            r.session = rc.session_id.or(r.session);
            r.resumed = rc.resumed;
        }
        return r;
    }
    if r.task.pending == Pending::InFlight && r.task.state.is_none() && hold.is_none() {
        // Claimed, its first start not told yet (the receipt is written a moment after).
        r.state = "starting";
        return r;
    }
    if r.task.pending == Pending::InFlight {
        r.attempt = Some(state.attempts);
        r.due = state.retry_at;
        if state.retry_at.is_some_and(|t| t > now) && !state.on_hold {
            r.state = "waiting";
            return r;
        }
    }
    // Due now (queued, or its retry time come), or its last run held by a rate limit or an
    // outage: what holds the worker holds it.
    match hold {
        Some(h) => {
            r.state = "held";
            r.held = Some(h.clone());
        }
        None if r.task.pending == Pending::InFlight => r.state = "waiting",
        None => {}
    }
    r
}

fn time_of(epoch: f64) -> String {
    clock::from_epoch_f64(epoch).map(clock::rfc3339).unwrap_or_default()
}

impl Row {
    fn json(&self, now: f64) -> Value {
        let t = &self.task;
        json!({
            "task_id": t.id,
            "state": self.state,
            "queued_at": clock::rfc3339(t.queued_at),
            "queued_seconds": (now - clock::epoch_f64(t.queued_at)).max(0.0),
            "attempt": self.attempt,
            "agent_pid": self.pid,
            "started_at": self.started_at,
            "running_seconds": self.running_for,
            "session_id": self.session,
            "resumed": self.resumed,
            "retry_at": self.due.map(time_of),
            "held": self.held.as_ref().map(|h| json!({
                "by": h.by, "reason": h.reason, "until": h.until.map(time_of),
            })),
            "cancel_requested": t.cancel_requested,
        })
    }

    fn detail(&self, now: f64) -> String {
        let mut parts = Vec::new();
        if self.resumed {
            parts.push("resumed its session".to_string());
        }
        if self.state == "waiting" {
            match self.due.filter(|d| *d > now) {
                Some(due) => parts.push(format!("retry in {} ({})", age(due - now), time_of(due))),
                None => parts.push("retry due".into()),
            }
        }
        if let Some(h) = &self.held {
            let mut text = h.by.to_string();
            if let Some(r) = &h.reason {
                text.push_str(&format!(" ({r})"));
            }
            if let Some(u) = h.until.filter(|u| *u > now) {
                text.push_str(&format!(" for {} ({})", age(u - now), time_of(u)));
            }
            parts.push(text);
        }
        if self.task.cancel_requested {
            parts.push("cancel requested".into());
        }
        parts.join("; ")
    }

    fn cells(&self, now: f64) -> Vec<String> {
        let dash = || "-".to_string();
        let short = |s: &String| s.chars().take(8).collect::<String>();
        vec![
            self.task.id.clone(),
            self.state.to_string(),
            self.attempt.map_or_else(dash, |n| n.to_string()),
            age(now - clock::epoch_f64(self.task.queued_at)),
            self.pid.map_or_else(dash, |p| p.to_string()),
            self.running_for.map_or_else(dash, age),
            self.session.as_ref().map_or_else(dash, short),
            self.detail(now),
        ]
    }
}

/// The worker's heartbeat, if it has one that is fresh and not `stopped`; else why not.
fn alive(spool: &dyn ControlSpool, worker: &str, now: f64) -> Result<Heartbeat, String> {
    let hb = match spool.heartbeat(worker) {
        Ok(Some(bytes)) => {
            serde_json::from_slice::<Heartbeat>(&bytes).map_err(|_| "its heartbeat is unreadable")?
        }
        Ok(None) => return Err("no heartbeat".into()),
        Err(e) => return Err(e.to_string()),
    };
    if hb.status == "stopped" {
        return Err("stopped".into());
    }
    if hb.is_stale(now) {
        return Err(format!("heartbeat stale for {}", age(now - hb.timestamp)));
    }
    Ok(hb)
}

pub fn tasks(spool: &dyn ControlSpool, a: &TasksArgs) -> CtlResult {
    super::require_known(spool, &a.worker)?;
    let now = clock::now_f64();
    let hb = alive(spool, &a.worker, now);
    let hold = hb.as_ref().ok().and_then(hold_of);
    let rows: Vec<Row> = spool.tasks(&a.worker)?.into_iter().map(|t| row(t, hold.as_ref(), now)).collect();
    let worker_state = match &hb {
        Ok(h) => h.status.clone(),
        Err(_) => "not running".into(),
    };
    if a.json {
        let doc = json!({
            "worker": a.worker,
            "worker_state": worker_state,
            "worker_running": hb.is_ok(),
            "tasks": rows.iter().map(|r| r.json(now)).collect::<Vec<_>>(),
        });
        print_json(&doc)?;
        return Ok(OK);
    }
    let head = match &hb {
        Ok(h) => format!(
            "{}: {}, {}/{} running, {} queued, breaker {}\n",
            a.worker, h.status, h.active_tasks, h.max_concurrent, h.queue_size, h.circuit_state
        ),
        Err(why) => format!("{}: not running ({why}); its tasks wait for it\n", a.worker),
    };
    let header = ["ID", "STATE", "ATTEMPT", "QUEUED", "PID", "RUNNING", "SESSION", "DETAIL"];
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells(now)).collect();
    let body = match cells.is_empty() {
        true => "no task queued or in flight\n".to_string(),
        false => table(&header, &cells),
    };
    print(&format!("{head}{body}"))?;
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::records::Receipt;
    use crate::format::task::{Run, State};
    use std::time::{Duration, UNIX_EPOCH};

    const NOW: f64 = 1_800_000_100.0;

    fn listed(pending: Pending, state: Option<State>, receipt: Option<Receipt>) -> Listed {
        let queued_at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Listed { id: "t".into(), pending, queued_at, state, receipt, cancel_requested: false }
    }

    fn receipt(attempt: u32, at: &str) -> Receipt {
        Receipt {
            task_id: "t".into(),
            worker: "m".into(),
            claimed_at: at.into(),
            attempt,
            pid: 1,
            agent_pid: 42,
            hostname: "h".into(),
            task_file: String::new(),
            session_id: Some("s-1".into()),
            resumed: attempt > 1,
        }
    }

    fn state_after(attempts: u32, retry_at: f64, run_started: &str) -> State {
        let run = Run {
            attempt: attempts,
            started_at: run_started.into(),
            outcome: "exit_code".into(),
            ..Run::default()
        };
        State { attempts, retry_at: Some(retry_at), runs: vec![run], ..State::default() }
    }

    #[test]
    fn a_claimed_task_runs_waits_or_is_held() {
        let at = "2027-01-15T08:01:30.000Z";
        // Attempt 1 started, nothing saved yet: running, with its receipt's facts.
        let r = row(listed(Pending::InFlight, None, Some(receipt(1, at))), None, NOW);
        assert_eq!(
            (r.state, r.attempt, r.pid, r.session.as_deref()),
            ("running", Some(1), Some(42), Some("s-1"))
        );
        // Attempt 1 ended and was saved: it waits for its retry (the receipt's run is listed).
        let waiting = state_after(1, NOW + 60.0, at);
        let r = row(listed(Pending::InFlight, Some(waiting.clone()), Some(receipt(1, at))), None, NOW);
        assert_eq!((r.state, r.due), ("waiting", Some(NOW + 60.0)));
        // Attempt 2 started since: running again, resuming.
        let r = row(
            listed(Pending::InFlight, Some(waiting), Some(receipt(2, "2027-01-15T08:01:40.000Z"))),
            None,
            NOW,
        );
        assert_eq!((r.state, r.attempt, r.resumed), ("running", Some(2), true));
        // Due, but the breaker holds every start.
        let hold = Hold { by: "breaker", reason: Some("failures".into()), until: Some(NOW + 30.0) };
        let due = state_after(1, NOW - 1.0, at);
        let r = row(listed(Pending::InFlight, Some(due.clone()), Some(receipt(1, at))), Some(&hold), NOW);
        assert_eq!((r.state, r.held.as_ref()), ("held", Some(&hold)));
        assert!(r.detail(NOW).starts_with("breaker (failures) for 30s"), "{}", r.detail(NOW));
        let r = row(listed(Pending::InFlight, Some(due), Some(receipt(1, at))), None, NOW);
        assert_eq!(r.state, "waiting", "due, and nothing holds it: it starts at the next turn");
    }

    #[test]
    fn a_queued_task_is_held_while_the_worker_is() {
        assert_eq!(row(listed(Pending::Queued, None, None), None, NOW).state, "queued");
        let paused = Hold { by: "rate_limit", reason: None, until: Some(NOW + 120.0) };
        let r = row(listed(Pending::Queued, None, None), Some(&paused), NOW);
        assert_eq!(r.state, "held");
        assert_eq!(r.json(NOW)["held"]["by"], "rate_limit");
        assert_eq!(r.json(NOW)["queued_seconds"], 100.0);
    }

    #[test]
    fn holds_come_from_the_heartbeat() {
        let hb = |v: Value| serde_json::from_value::<Heartbeat>(v).expect("heartbeat");
        let base = json!({"worker": "m", "pid": 1, "hostname": "h", "timestamp": NOW, "status": "idle",
            "active_tasks": 0, "queue_size": 0, "max_concurrent": 1, "processed": 0, "failed": 0,
            "retried": 0, "dead_lettered": 0, "circuit_state": "closed", "started_at": NOW,
            "heartbeat_interval": 10.0, "version": "0"});
        assert_eq!(hold_of(&hb(base.clone())), None);
        let mut v = base.clone();
        v["status"] = "budget_exhausted".into();
        v["paused_reason"] = "budget_exhausted".into();
        v["paused_until"] = (NOW + 5.0).into();
        assert_eq!(hold_of(&hb(v)).map(|h| (h.by, h.until)), Some(("spend_cap", Some(NOW + 5.0))));
        let mut v = base;
        v["circuit_state"] = "open".into();
        v["circuit_reason"] = "credential".into();
        assert_eq!(hold_of(&hb(v)).map(|h| (h.by, h.reason)), Some(("breaker", Some("credential".into()))));
    }
}
