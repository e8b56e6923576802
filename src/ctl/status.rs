//! `watcherctl status`: one row per worker from its heartbeat — the old guide's health check
//! in one command. A heartbeat older than three of the worker's own heartbeat intervals is
//! stale: the process is hung or gone without saying so.

use serde_json::{json, Value};

use super::args::StatusArgs;
use super::exit::{CtlError, CtlResult, OK, TASK_FAILED};
use super::output::{age, print, print_json, table};
use crate::format::records::Heartbeat;
use crate::spool::control::{ControlSpool, Place};
use crate::sys::clock;

/// What is known of one worker.
struct Row {
    worker: String,
    /// The heartbeat, or the state shown without one (`never started`, `unreadable`) and why.
    heartbeat: Result<Heartbeat, (&'static str, String)>,
    /// Task files in the queue, for a worker without a readable heartbeat.
    queued_files: usize,
}

impl Row {
    fn age(&self, now: f64) -> Option<f64> {
        self.heartbeat.as_ref().ok().map(|h| (now - h.timestamp).max(0.0))
    }

    fn stale(&self, now: f64) -> bool {
        match &self.heartbeat {
            Ok(h) => h.status != "stopped" && h.is_stale(now),
            Err(_) => false,
        }
    }

    fn state(&self) -> &str {
        match &self.heartbeat {
            Ok(h) => &h.status,
            Err((state, _)) => state,
        }
    }

    fn healthy(&self, now: f64) -> bool {
        self.heartbeat.as_ref().is_ok_and(|h| h.status != "stopped") && !self.stale(now)
    }

    fn json(&self, now: f64) -> Value {
        let mut v = json!({
            "worker": self.worker,
            "state": self.state(),
            "healthy": self.healthy(now),
            "stale": self.stale(now),
            "heartbeat_age_seconds": self.age(now),
        });
        match &self.heartbeat {
            Ok(h) => v["heartbeat"] = serde_json::to_value(h).unwrap_or(Value::Null),
            Err((_, e)) => {
                v["error"] = e.clone().into();
                v["queued"] = self.queued_files.into();
            }
        }
        v
    }

    fn cells(&self, now: f64) -> Vec<String> {
        let Ok(h) = &self.heartbeat else {
            let none = || "-".to_string();
            return vec![
                self.worker.clone(),
                self.state().into(),
                none(),
                none(),
                self.queued_files.to_string(),
                none(),
                none(),
                none(),
            ];
        };
        let mut hb_age = age(self.age(now).unwrap_or(0.0));
        if self.stale(now) {
            hb_age.push_str(" STALE");
        }
        let queued = match h.retry_waiting {
            0 => h.queue_size.to_string(),
            n => format!("{} (+{n} retrying)", h.queue_size),
        };
        vec![
            self.worker.clone(),
            h.status.clone(),
            hb_age,
            format!("{}/{}", h.active_tasks, h.max_concurrent),
            queued,
            h.circuit_state.clone(),
            h.processed.to_string(),
            h.failed.to_string(),
        ]
    }
}

/// The rows of one worker: one per host whose heartbeat the backend holds (an engine shared
/// by hosts names each, as `worker@host`), or one saying why there is none.
fn rows(spool: &dyn ControlSpool, worker: &str) -> Vec<Row> {
    let at = || spool.locate(Place::Heartbeat(worker));
    let beats = match spool.heartbeats(worker) {
        Ok(b) if b.is_empty() => {
            vec![(String::new(), Err(("never started", format!("no heartbeat {}", at()))))]
        }
        Ok(b) => b
            .into_iter()
            .map(|(host, bytes)| {
                let h = serde_json::from_slice::<Heartbeat>(&bytes)
                    .map_err(|e| ("unreadable", format!("{} is not a heartbeat: {e}", at())));
                (host, h)
            })
            .collect(),
        Err(e) => vec![(String::new(), Err(("unreadable", e.to_string())))],
    };
    let queued_files = spool.queued(worker);
    beats
        .into_iter()
        .map(|(host, heartbeat)| {
            if let Err(("unreadable", why)) = &heartbeat {
                // The row says unreadable; this says why, naming the file.
                eprintln!("watcherctl: {why}");
            }
            let worker = if host.is_empty() { worker.to_string() } else { format!("{worker}@{host}") };
            Row { worker, heartbeat, queued_files }
        })
        .collect()
}

pub fn status(spool: &dyn ControlSpool, a: &StatusArgs) -> CtlResult {
    let workers: Vec<String> = if a.workers.is_empty() {
        spool.workers().into_iter().collect()
    } else {
        for w in &a.workers {
            super::require_known(spool, w)?;
        }
        a.workers.clone()
    };
    let now = clock::now_f64();
    let rows: Vec<Row> = workers.iter().flat_map(|w| rows(spool, w)).collect();
    if a.json {
        print_json(&Value::Array(rows.iter().map(|r| r.json(now)).collect()))?;
    } else if rows.is_empty() {
        return Err(CtlError::new(OK, format!("no workers under {}", spool.locate(Place::Root))));
    } else {
        let header = ["WORKER", "STATE", "HEARTBEAT", "ACTIVE", "QUEUED", "BREAKER", "PROCESSED", "FAILED"];
        let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells(now)).collect();
        print(&table(&header, &cells))?;
    }
    let unhealthy = rows.iter().any(|r| !r.healthy(now));
    Ok(if a.check && unhealthy { TASK_FAILED } else { OK })
}
