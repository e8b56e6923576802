//! Announcing: the workers' health judged every turn (`worker_unhealthy` and
//! `worker_recovered`, each once), the turn's events written durably and then the state,
//! and the notify command run for each event written.
//!
//! Order is what makes a restart exact: events first, state second. If events cannot be
//! written they stay staged, the state is not written, and no result is taken until they
//! are; a crash in between writes the same events again under the same names.

use std::time::{Duration, Instant};

use serde_json::json;

use super::command::{CommandOutcome, Ended, Job, Limits};
use super::events::{self, Event};
use super::health::{self, Change, HeartbeatReading, Verdict};
use super::{child_token, Listener, Phase, RETRY_IO, STATE_EVERY};
use crate::log::ids;
use crate::spool::listener::{CommitError, Outgoing};
use crate::sys::clock;

impl Listener {
    /// Judges every worker's heartbeat now, and stages what changed.
    pub(super) fn judge_health(&mut self) {
        let now = clock::now_f64();
        let now_mono = Instant::now();
        let stale_after = self.cfg.tuning.stale_after;
        let names: Vec<String> = self.workers.keys().cloned().collect();
        for name in names {
            let Some(live) = self.workers.get(&name) else { continue };
            let ws = self.state.workers.entry(name.clone()).or_default();
            let expected = live.named || ws.health.seen_heartbeat;
            let super::Judged { verdict, reading, age } = live.judged(expected, now, now_mono, stale_after);
            if let Some(change) = health::change(&ws.health, &verdict) {
                let beat = match reading {
                    HeartbeatReading::Beat(b) => Some(b),
                    _ => None,
                };
                let event = match change {
                    Change::Unhealthy => unhealthy(&name, &verdict, beat, stale_after),
                    Change::Recovered => {
                        let written = beat.map(|b| health::written_at(b.timestamp, now, age));
                        recovered(&name, &ws.health, beat, written.unwrap_or(now))
                    }
                };
                ws.health.unhealthy = change == Change::Unhealthy;
                ws.health.why = verdict.problems.iter().map(|p| p.to_string()).collect();
                let sick = change == Change::Unhealthy;
                ws.health.event = sick.then(|| event.id.clone());
                ws.health.since = sick.then_some(verdict.since);
                self.state_dirty = true;
                self.log_health(&name, &change, &verdict);
                self.stage(event);
            }
            if let Some(live) = self.workers.get_mut(&name) {
                live.stale_at =
                    verdict.stale_in.map(|s| now_mono + Duration::from_secs_f64(s.clamp(0.0, 1e9)));
                live.verdict = Some(verdict);
            }
        }
    }

    fn log_health(&self, worker: &str, change: &Change, v: &Verdict) {
        let why = v.problems.join(",");
        match change {
            Change::Unhealthy => self.log.warn(
                &format!("worker unhealthy: {}", v.message),
                &[("MESSAGE_ID", &ids::WORKER_UNHEALTHY), ("WORKER", &worker), ("WHY", &why)],
            ),
            Change::Recovered => self
                .log
                .info("worker recovered", &[("MESSAGE_ID", &ids::WORKER_RECOVERED), ("WORKER", &worker)]),
        }
    }

    /// Writes the staged events, then (once they are all durable) the state: at once after
    /// events, so that a restart never announces them again; else (counts of history that is
    /// not announced, seals) at most every [`STATE_EVERY`], since losing that costs only a
    /// re-read.
    pub(super) fn commit(&mut self) {
        if self.retry_io_at.is_some() {
            return;
        }
        let wrote_events = !self.staged.is_empty() && self.write_events();
        let dirty = self.state_dirty || self.spool.dirty();
        if !self.staged.is_empty() || !dirty || self.retry_io_at.is_some() {
            return;
        }
        let now = Instant::now();
        let due = self.state_due.is_some_and(|t| now >= t);
        if wrote_events || due || self.phase != Phase::Running {
            self.state_due = None;
            self.write_state();
        } else if self.state_due.is_none() {
            self.state_due = Some(now + STATE_EVERY);
        }
    }

    /// Returns whether any event was written.
    fn write_events(&mut self) -> bool {
        let staged = std::mem::take(&mut self.staged);
        let outgoing: Vec<Outgoing> =
            staged.iter().map(|e| Outgoing { id: e.id.clone(), json: e.to_bytes() }).collect();
        let outcomes = self.spool.write_events(&outgoing);
        let mut wrote = false;
        let mut first_error = None;
        for (e, outcome) in staged.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    wrote = true;
                    self.written(e);
                }
                Err(error) => {
                    self.staged.push(e);
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(e) = first_error {
            self.retried_error(
                "cannot write events; no result is taken until they are written",
                &[("MESSAGE_ID", &ids::EVENTS_BLOCKED), ("FOLDER", &e.at), ("ERROR", &e.cause)],
            );
            self.retry_io_at = Some(Instant::now() + RETRY_IO);
        }
        wrote
    }

    /// An event is durable: counted, logged, and its notify command queued.
    fn written(&mut self, e: Event) {
        *self.state.events_written.entry(e.event.to_string()).or_default() += 1;
        self.own.event_written(e.event);
        self.state_dirty = true;
        if e.task_id.is_some() {
            let task = e.task_id.as_deref().unwrap_or("");
            self.log.debug(
                "event written",
                &[("EVENT", &e.event), ("WORKER", &e.worker.as_deref().unwrap_or("")), ("TASK_ID", &task)],
            );
        }
        if self.cfg.tuning.notify_argv.is_empty() || self.phase != Phase::Running {
            return;
        }
        let path = self.spool.event_at(&e.id);
        self.commands.enqueue(Job {
            json: e.to_bytes(),
            event_id: e.id,
            kind: e.event,
            path,
            worker: e.worker,
            task_id: e.task_id,
        });
    }

    /// Commits the results taken and the state, together.
    fn write_state(&mut self) {
        self.state.written_at = clock::now_f64();
        match self.spool.commit(self.state.to_value()) {
            Ok(()) => {
                self.state_dirty = false;
                self.errors_over();
            }
            Err(CommitError::Failed(e)) => {
                let at = self.spool.state_at();
                self.retried_error(
                    "cannot write the listener's state; trying again (a crash now would announce the last events again)",
                    &[("MESSAGE_ID", &ids::EVENTS_BLOCKED), ("FOLDER", &at), ("ERROR", &e)],
                );
                self.retry_io_at = Some(Instant::now() + RETRY_IO);
            }
            Err(CommitError::Superseded(why)) => {
                self.log.error("another listener serves the spool now; stopping", &[("ERROR", &why)]);
                self.shutdown();
            }
        }
    }

    /// Reaps the notify commands that ended and starts queued ones.
    pub(super) fn run_commands(&mut self) {
        let mut ended = Vec::new();
        if std::mem::take(&mut self.reap_due) {
            ended.extend(self.commands.reap(self.poll.registry()));
        }
        if self.phase == Phase::Running {
            let t = &self.cfg.tuning;
            let limits = Limits {
                argv: t.notify_argv.clone(),
                concurrency: t.notify_concurrency,
                timeout: t.notify_timeout,
                kill_grace: t.kill_grace,
            };
            ended.extend(self.commands.start(&limits, self.poll.registry(), child_token));
        }
        self.commands.sweep();
        for w in self.commands.warnings() {
            self.log.warn(&w, &[]);
        }
        for e in ended {
            self.command_ended(e);
        }
    }

    pub(super) fn command_ended(&mut self, e: Ended) {
        self.own.command_ended(e.outcome.label());
        let ms = e.duration.as_millis();
        if e.outcome == CommandOutcome::Ok {
            self.log.debug("notify command done", &[("EVENT_ID", &e.job.event_id), ("DURATION_MS", &ms)]);
            return;
        }
        let why = match &e.outcome {
            CommandOutcome::Failed(crate::runner::Exit::Code(c)) => format!("exit status {c}"),
            CommandOutcome::Failed(crate::runner::Exit::Signal(s)) => format!("killed by signal {s}"),
            CommandOutcome::TimedOut => "timed out (ORCHESTRATOR_NOTIFY_TIMEOUT)".to_string(),
            CommandOutcome::SpawnError(s) => format!("cannot start: {s}"),
            CommandOutcome::Ok => String::new(),
        };
        self.log.warn(
            &format!("notify command failed: {why}"),
            &[
                ("MESSAGE_ID", &ids::NOTIFY_FAILED),
                ("EVENT_ID", &e.job.event_id),
                ("EVENT", &e.job.kind),
                ("DURATION_MS", &ms),
                ("STDERR", &e.stderr_tail.trim_end()),
            ],
        );
    }
}

fn beat_json(b: Option<&health::Beat>) -> serde_json::Value {
    match b {
        Some(b) => json!({
            "timestamp": b.timestamp, "status": b.status, "circuit_state": b.circuit_state,
            "pid": b.pid, "hostname": b.hostname,
        }),
        None => serde_json::Value::Null,
    }
}

fn unhealthy(
    worker: &str,
    v: &Verdict,
    beat: Option<&health::Beat>,
    stale: Option<std::time::Duration>,
) -> Event {
    let at = clock::from_epoch_f64(v.since).unwrap_or_else(std::time::SystemTime::now);
    let why = v.problems.join(",");
    let identity = format!("{why}\0{}", v.since.to_bits());
    Event::new(events::WORKER_UNHEALTHY, Some(worker), at, &identity)
        .with("why", json!(v.problems))
        .with("message", json!(v.message))
        .with("stale_after_seconds", json!(beat.map(|b| b.stale_limit(stale))))
        .with("heartbeat", beat_json(beat))
}

/// `worker_recovered`, at `t`: when the heartbeat that says so was written (see
/// [`health::written_at`]), or now.
fn recovered(worker: &str, was: &health::Announced, beat: Option<&health::Beat>, t: f64) -> Event {
    let at = clock::from_epoch_f64(t).unwrap_or_else(std::time::SystemTime::now);
    let identity = format!("{}\0{}", was.event.as_deref().unwrap_or(""), t.to_bits());
    Event::new(events::WORKER_RECOVERED, Some(worker), at, &identity)
        .with("was", json!(was.why))
        .with("unhealthy_event", json!(was.event))
        .with("unhealthy_since", json!(was.since.and_then(clock::from_epoch_f64).map(clock::rfc3339)))
        .with("down_seconds", json!(was.since.map(|s| (t - s).max(0.0))))
        .with("heartbeat", beat_json(beat))
}
