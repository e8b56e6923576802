//! What the end of an agent run means for its task: completed, retried after a backoff, or
//! dead-lettered; and acting on outcomes once the spool has made them durable.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{Daemon, Finishing};
use crate::agent::{self, Output};
use crate::clock;
use crate::log::{ids, Level};
use crate::metrics::{End, Recorded, Run};
use crate::records::{DeadLetter, TaskResult, COMPLETED, FAILED};
use crate::retry;
use crate::runner::{Captured, Exit};
use crate::spool::{Claim, Done, Op, OpKind};
use crate::task::{Failure, Task};

/// Failures kept in a task's history (the oldest are dropped).
const HISTORY_KEPT: usize = 50;

/// One finished attempt, whatever its outcome.
pub(super) struct Attempt {
    pub(super) claim: Claim,
    pub(super) task: Task,
    pub(super) queued_at: SystemTime,
    pub(super) number: u32,
    pub(super) started_wall: SystemTime,
    pub(super) duration: Duration,
    pub(super) exit: Option<Exit>,
    pub(super) captured: Option<Captured>,
    pub(super) output: Option<Output>,
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

impl Daemon {
    pub(super) fn finish(&mut self, slot: usize, exit: Exit) {
        let Some(run) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.active -= 1;
        let captured = run.child.finish(self.poll.registry(), &mut self.scratch);
        if run.abandoned {
            self.breaker.abandoned();
            self.ids.remove(&run.task.id);
            match self.spool.requeue(&run.claim) {
                Ok(()) => {
                    self.log.info("task stopped by the shutdown and re-queued", &[("TASK_ID", &run.task.id)])
                }
                Err(e) => self.log.error(
                    "cannot re-queue a task stopped by the shutdown; it is recovered at the next start",
                    &[("TASK_ID", &run.task.id), ("ERROR", &e)],
                ),
            }
            return;
        }
        let output = agent::interpret(&captured.stdout, !captured.stdout_truncated);
        let verdict = if run.timed_out {
            let limit = run.task.timeout.unwrap_or(self.cfg.tuning.task_timeout).as_secs_f64();
            Some(("timeout", format!("no outcome within the time limit of {limit} s; the agent was killed")))
        } else {
            match exit {
                Exit::Code(0) => match &output.report {
                    Some(r) if r.is_error => Some((
                        "agent_error",
                        format!(
                            "the agent reported an error ({})",
                            r.subtype.as_deref().unwrap_or("is_error")
                        ),
                    )),
                    _ => None,
                },
                Exit::Code(c) => Some(("exit_code", format!("the agent exited with status {c}"))),
                Exit::Signal(s) => Some(("signal", format!("the agent was killed by {}", signal_name(s)))),
            }
        };
        let attempt = Attempt {
            claim: run.claim,
            task: run.task,
            queued_at: run.queued_at,
            number: run.attempt,
            started_wall: run.started_wall,
            duration: run.started.elapsed(),
            exit: Some(exit),
            captured: Some(captured),
            output: Some(output),
        };
        match verdict {
            None => self.completed(attempt),
            Some((reason, message)) => self.failed(attempt, reason, message),
        }
    }

    fn result(&self, a: &Attempt, status: &str, reason: Option<&str>, message: Option<&str>) -> TaskResult {
        let (exit_code, signal) = match a.exit {
            Some(Exit::Code(c)) => (Some(c), None),
            Some(Exit::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        let cap = a.captured.as_ref();
        TaskResult {
            task_id: a.task.id.clone(),
            worker: self.cfg.worker.clone(),
            status: status.into(),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            exit_code,
            signal,
            output: a.output.as_ref().map_or(Value::Null, |o| o.value.clone()),
            output_truncated: cap.is_some_and(|c| c.stdout_truncated),
            output_bytes: cap.map_or(0, |c| c.stdout_bytes),
            stderr_tail: cap.map_or_else(String::new, |c| c.stderr_tail.clone()),
            attempts: a.number,
            started_at: a.task.state.first_started_at.clone(),
            finished_at: clock::rfc3339_now(),
            duration_seconds: a.duration.as_secs_f64(),
            hostname: self.hostname.clone(),
            metadata: a.task.metadata(),
            agent: a.output.as_ref().and_then(|o| o.report.clone()),
        }
    }

    fn fields(a: &Attempt, reason: Option<&str>) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("TASK_ID", a.task.id.clone()),
            ("ATTEMPT", a.number.to_string()),
            ("DURATION_MS", a.duration.as_millis().to_string()),
        ];
        match a.exit {
            Some(Exit::Code(c)) => f.push(("EXIT_CODE", c.to_string())),
            Some(Exit::Signal(s)) => f.push(("SIGNAL", s.to_string())),
            None => {}
        }
        if let Some(r) = reason {
            f.push(("REASON", r.to_string()));
        }
        f
    }

    fn completed(&mut self, a: Attempt) {
        if let Some(t) = self.breaker.succeeded() {
            self.breaker_changed(t);
        }
        let result = self.result(&a, COMPLETED, None, None);
        self.finishing.insert(
            a.claim.key.clone(),
            Finishing {
                release: Some(a.task.id.clone()),
                status: Final::Completed,
                message: "task completed".into(),
                fields: Self::fields(&a, None),
                recorded: Recorded { end: End::Completed, run: Self::run_of(&a) },
            },
        );
        self.spool.stage(Op::Complete { claim: a.claim, result });
    }

    /// A failed attempt: retried after its backoff, or given up on.
    pub(super) fn failed(&mut self, mut a: Attempt, reason: &'static str, message: String) {
        if let Some(t) = self.breaker.failed(
            Instant::now(),
            self.cfg.tuning.breaker_threshold,
            self.cfg.tuning.breaker_timeout,
        ) {
            self.breaker_changed(t);
        }
        let (exit_code, signal) = match a.exit {
            Some(Exit::Code(c)) => (Some(c), None),
            Some(Exit::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        a.task.state.attempts = a.number;
        a.task.state.history.push(Failure {
            attempt: a.number,
            reason: reason.into(),
            message: message.clone(),
            exit_code,
            signal,
            started_at: clock::rfc3339(a.started_wall),
            finished_at: clock::rfc3339_now(),
            duration_seconds: a.duration.as_secs_f64(),
            stderr_tail: a.captured.as_ref().map_or_else(String::new, |c| c.stderr_tail.clone()),
        });
        let excess = a.task.state.history.len().saturating_sub(HISTORY_KEPT);
        a.task.state.history.drain(..excess);
        let t = &self.cfg.tuning;
        let max_retries = a.task.max_retries.unwrap_or(t.max_retries);
        if a.number <= max_retries {
            let delay = retry::delay(
                a.number,
                t.initial_retry_delay,
                t.retry_backoff,
                t.max_retry_delay,
                fastrand::f64(),
            );
            a.task.state.retry_at = Some(clock::now_f64() + delay.as_secs_f64());
            let recorded = Recorded { end: End::Retried { reason: reason.into() }, run: Self::run_of(&a) };
            self.retrying.entry(a.claim.key.clone()).or_default().push_back(recorded);
            let mut fields = vec![("MESSAGE_ID", ids::RETRY_SCHEDULED.to_string())];
            fields.extend(Self::fields(&a, Some(reason)));
            fields.push(("RETRY_IN_MS", delay.as_millis().to_string()));
            fields.push(("ERROR", message));
            self.log_fields(Level::Warning, "attempt failed; retrying", &fields);
            self.spool.stage(Op::SaveState {
                claim: a.claim.clone(),
                task: a.task.clone(),
                queued_at: a.queued_at,
            });
            self.wait_until(a.claim, a.task, a.queued_at, Instant::now() + delay);
            return;
        }
        let summary = format!("gave up after {} attempt(s): {message}", a.number);
        let result = self.result(&a, FAILED, Some(reason), Some(&summary));
        let mut fields = Self::fields(&a, Some(reason));
        fields.push(("ERROR", message));
        let run = Self::run_of(&a);
        self.dead_letter(a.claim, a.task, reason, summary, Some(result), fields, run);
    }

    /// Stages the dead letter of a valid task (and its failed result); `run` is its last
    /// agent run, if any.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dead_letter(
        &mut self,
        claim: Claim,
        task: Task,
        reason: &str,
        message: String,
        result: Option<TaskResult>,
        fields: Vec<(&'static str, String)>,
        run: Option<Run>,
    ) {
        let record = DeadLetter {
            task_id: Some(task.id.clone()),
            worker: self.cfg.worker.clone(),
            reason: reason.into(),
            message,
            dead_lettered_at: clock::rfc3339_now(),
            attempts: task.state.attempts,
            history: task.state.history.clone(),
            source_file: claim.source_lossy(),
            task: Some(Value::Object(task.doc.clone())),
            raw_preview: None,
            original_file: None,
            hostname: self.hostname.clone(),
        };
        self.finishing.insert(
            claim.key.clone(),
            Finishing {
                release: Some(task.id.clone()),
                status: Final::Failed,
                message: "task failed and was dead-lettered".into(),
                fields,
                recorded: Recorded { end: End::Failed { reason: reason.into() }, run },
            },
        );
        self.spool.stage(Op::DeadLetter { claim, record, result, keep_original: false });
    }

    /// Commits the turn's writes and acts on their outcomes.
    pub(super) fn commit(&mut self) {
        for done in self.spool.commit() {
            self.on_done(done);
        }
        if self.spool.has_pending() && self.next_commit.is_none() {
            self.next_commit = Some(Instant::now() + super::RETRY_IO);
        }
    }

    fn on_done(&mut self, done: Done) {
        match (done.kind, done.error) {
            (OpKind::Complete | OpKind::DeadLetter, None) => {
                let Some(f) = done.claim.and_then(|c| self.finishing.remove(&c.key)) else {
                    return;
                };
                if let Some(id) = &f.release {
                    self.ids.remove(id);
                }
                self.metrics.record(&f.recorded);
                let (level, id) = match f.status {
                    Final::Completed => {
                        self.stats.completed += 1;
                        (Level::Info, ids::TASK_COMPLETED)
                    }
                    Final::Failed | Final::Invalid => {
                        self.stats.failed += 1;
                        self.stats.dead_lettered += 1;
                        if f.status == Final::Invalid {
                            (Level::Warning, ids::TASK_INVALID)
                        } else {
                            (Level::Error, ids::TASK_FAILED)
                        }
                    }
                };
                let mut fields = vec![("MESSAGE_ID", id.to_string())];
                fields.extend(f.fields);
                self.log_fields(level, &f.message, &fields);
            }
            (OpKind::SaveState, None) => {
                let Some(key) = done.claim.map(|c| c.key) else {
                    return;
                };
                let recorded = self.retrying.get_mut(&key).and_then(VecDeque::pop_front);
                if self.retrying.get(&key).is_some_and(VecDeque::is_empty) {
                    self.retrying.remove(&key);
                }
                if let Some(r) = recorded {
                    self.stats.retried += 1;
                    self.metrics.record(&r);
                }
            }
            (OpKind::Heartbeat, None) => self.heartbeat_written = Instant::now(),
            (kind, Some(e)) => {
                let what = match kind {
                    OpKind::Complete => "cannot write a result (will retry)",
                    OpKind::DeadLetter => "cannot write a dead letter (will retry)",
                    OpKind::SaveState | OpKind::Requeue => "cannot save a task's state (will retry)",
                    OpKind::Receipt => "cannot write a claim receipt",
                    OpKind::Heartbeat => "cannot write the heartbeat",
                };
                self.io_error(what, &e);
            }
            (_, None) => {}
        }
    }

    /// The agent run of an attempt, for the metrics; none when the agent did not start.
    fn run_of(a: &Attempt) -> Option<Run> {
        a.exit?;
        Some(Run { duration: a.duration, report: a.output.as_ref().and_then(|o| o.report.clone()) })
    }

    fn log_fields(&self, level: Level, message: &str, fields: &[(&'static str, String)]) {
        let refs: Vec<crate::log::Field> =
            fields.iter().map(|(k, v)| (*k, v as &dyn std::fmt::Display)).collect();
        self.log.log(level, message, &refs);
    }
}

/// How a task ended, for counters and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Final {
    Completed,
    Failed,
    Invalid,
}
