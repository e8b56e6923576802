//! What the end of an agent run means for its task: completed, retried after a backoff, or
//! dead-lettered; and acting on outcomes once the spool has made them durable.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{Daemon, Finishing};
use crate::agent::classify::{self, classify, Class, EmptyOutput};
use crate::agent::reason::Reason;
use crate::agent::{self, Output};
use crate::format::records::{DeadLetter, TaskResult};
use crate::format::task::Task;
use crate::log::{ids, Level};
use crate::metrics::{End, Recorded, Run};
use crate::runner::supervise::Why;
use crate::runner::{Captured, Exit};
use crate::spool::{Claim, Done, Op, OpKind};
use crate::sys::clock;

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
    /// The session the run was given, if any.
    pub(super) session: Option<super::sessions::RunSession>,
}

impl Attempt {
    /// When the run started, on the monotonic clock.
    pub(super) fn started(&self) -> Instant {
        Instant::now().checked_sub(self.duration).unwrap_or_else(Instant::now)
    }
}

impl Daemon {
    pub(super) fn finish(&mut self, slot: usize, exit: Exit) {
        let Some(run) = self.flight.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.flight.active -= 1;
        let captured = self.agents.finish(slot, self.poll.registry(), &mut self.scratch);
        if run.stop.why() == Some(Why::Gone) {
            return self.discard_gone(&run.claim, &run.task.id);
        }
        if run.stop.why() == Some(Why::Shutdown) && run.cancel.is_none() {
            self.holds.breaker.abandoned();
            self.flight.ids.remove(&run.task.id);
            if run.session.is_some() {
                // Its state now says the agent has the session: the next run resumes it.
                let (claim, task, queued_at) = (run.claim, run.task, run.queued_at);
                self.log.info("task stopped by the shutdown and re-queued", &[("TASK_ID", &task.id)]);
                return self.spool.stage(Op::Requeue { claim, task, queued_at });
            }
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
        let duration = run.started.elapsed();
        let output = agent::interpret_captured(&captured);
        let policy = &self.cfg.tuning.policy;
        let mut verdict = classify(
            &classify::Run {
                exit,
                timed_out: run.stop.why() == Some(Why::Timeout),
                output: &output,
                stdout_bytes: captured.stdout_bytes,
                stderr_tail: &captured.stderr_tail,
                duration,
            },
            policy.empty_output,
        );
        if verdict.class == Class::Failed(Reason::Timeout) {
            let limit = run.task.timeout.unwrap_or(self.cfg.tuning.task_timeout).as_secs_f64();
            verdict.message = format!("no outcome within the time limit of {limit} s; the agent was killed");
        }
        let suspect = verdict.class == Class::Success
            && captured.stdout_bytes == 0
            && duration < Duration::from_secs(1)
            && policy.empty_output == EmptyOutput::Warn;
        if suspect {
            self.log.warn(
                "suspect success: the agent exited 0 without any output in under a second (EMPTY_OUTPUT=fail makes it a failure)",
                &[("TASK_ID", &run.task.id)],
            );
        }
        if let Some(cost) = output.report.as_ref().and_then(|r| r.total_cost_usd) {
            self.spend(cost);
        }
        let attempt = Attempt {
            claim: run.claim,
            task: run.task,
            queued_at: run.queued_at,
            number: run.attempt,
            started_wall: run.started_wall,
            duration,
            exit: Some(exit),
            captured: Some(captured),
            output: Some(output),
            session: run.session,
        };
        let mut attempt = attempt;
        if let Some(request) = run.cancel {
            return self.cancelled_run(attempt, &request);
        }
        if verdict.class != Class::Success && self.session_refused(&mut attempt) {
            return self.run_again(attempt);
        }
        Self::record_run(&mut attempt, outcome_of(&verdict.class));
        match verdict.class {
            Class::Success => self.completed(attempt),
            Class::Failed(reason) => self.failed(attempt, reason, verdict),
            Class::Permanent(reason) => self.permanent(attempt, reason, verdict),
            Class::RateLimited { reset_at } => self.rate_limited(attempt, verdict, reset_at),
            Class::Outage(cause) => self.outage(attempt, verdict, cause),
        }
    }

    /// A result of this worker for `task_id`, finished now.
    pub(super) fn result_of(&self, task_id: &str) -> TaskResult {
        TaskResult::new(
            task_id.into(),
            self.cfg.worker.clone(),
            self.report.hostname.clone(),
            clock::rfc3339_now(),
        )
    }

    /// The result of an attempt: completed, or failed for `failed`'s reason and message.
    pub(super) fn result(&self, a: &Attempt, failed: Option<(Reason, &str)>) -> TaskResult {
        let (exit_code, signal) = match a.exit {
            Some(Exit::Code(c)) => (Some(c), None),
            Some(Exit::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        let cap = a.captured.as_ref();
        let result = TaskResult {
            exit_code,
            signal,
            output: a.output.as_ref().map_or(Value::Null, |o| o.value.clone()),
            output_truncated: cap.is_some_and(|c| c.stdout_truncated),
            output_bytes: cap.map_or(0, |c| c.stdout_bytes),
            stderr_tail: cap.map_or_else(String::new, |c| c.stderr_tail.clone()),
            attempts: a.number,
            started_at: a.task.state.first_started_at.clone(),
            duration_seconds: a.duration.as_secs_f64(),
            metadata: a.task.metadata(),
            agent: a.output.as_ref().and_then(|o| o.report.clone()),
            runs: a.task.state.runs.clone(),
            ..self.result_of(&a.task.id)
        };
        match failed {
            Some((reason, message)) => result.failed(reason, message.into()),
            None => result,
        }
    }

    pub(super) fn fields(a: &Attempt, reason: Option<Reason>) -> Vec<(&'static str, String)> {
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
        if let Some(t) = self.holds.breaker.succeeded() {
            self.breaker_changed(t);
        }
        self.outage_over();
        let result = self.result(&a, None);
        self.flight.finishing.insert(
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

    /// Stages the dead letter of a valid task (and its failed result); `run` is its last
    /// agent run, if any.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dead_letter(
        &mut self,
        claim: Claim,
        task: Task,
        reason: Reason,
        message: String,
        result: Option<TaskResult>,
        fields: Vec<(&'static str, String)>,
        run: Option<Run>,
    ) {
        let record = DeadLetter {
            task_id: Some(task.id.clone()),
            worker: self.cfg.worker.clone(),
            reason: reason.as_str().into(),
            message,
            dead_lettered_at: clock::rfc3339_now(),
            attempts: task.state.attempts,
            history: task.state.history.clone(),
            source_file: claim.source_lossy(),
            task: Some(Value::Object(task.doc.clone())),
            raw_preview: None,
            original_file: None,
            hostname: self.report.hostname.clone(),
            session: task.state.session.clone(),
            runs: task.state.runs.clone(),
        };
        self.flight.finishing.insert(
            claim.key.clone(),
            Finishing {
                release: Some(task.id.clone()),
                status: Final::Failed,
                message: "task failed and was dead-lettered".into(),
                fields,
                recorded: Recorded { end: End::Failed { reason }, run },
            },
        );
        self.spool.stage(Op::DeadLetter { claim, record, result, keep_original: false });
    }

    /// Commits the turn's writes and acts on their outcomes.
    pub(super) fn commit(&mut self) {
        let dones = self.spool.commit();
        self.absorb(dones);
    }

    /// Commits and waits until everything staged is written (start-up, the last heartbeat).
    pub(super) fn commit_now(&mut self) {
        let dones = self.spool.commit_wait();
        self.absorb(dones);
    }

    /// Acts on the outcomes of written ops.
    fn absorb(&mut self, dones: Vec<Done>) {
        self.log_spool_notes();
        for dir in self.spool.recreated() {
            self.log.warn(
                "a folder of the spool was missing (removed under the worker?); re-created it",
                &[("MESSAGE_ID", &ids::FOLDER_RECREATED), ("FOLDER", &dir.display())],
            );
        }
        let wrote = !dones.is_empty();
        // Failures by what failed and why: one log line each, however many tasks they hit.
        let mut failures: Vec<(&'static str, std::io::Error, usize)> = Vec::new();
        for done in dones {
            if let Some((what, e)) = self.on_done(done) {
                match failures.iter_mut().find(|(w, f, _)| *w == what && f.to_string() == e.to_string()) {
                    Some(entry) => entry.2 += 1,
                    None => failures.push((what, e, 1)),
                }
            }
        }
        for (what, e, n) in &failures {
            self.io_error_with(what, e, &[("FILES", n)]);
        }
        // Only outcomes block new starts: a heartbeat or receipt that cannot be written does not.
        self.health.writes_failing = self.spool.has_pending();
        if self.health.writes_failing {
            if self.timers.commit.is_none() {
                self.timers.commit = Some(Instant::now() + super::RETRY_IO);
            }
        } else if wrote && failures.is_empty() {
            self.io_recovered();
            // The heartbeat that tells the recovery goes with the next batch.
        }
    }

    /// Acts on one op's outcome; returns what failed, to be logged.
    fn on_done(&mut self, done: Done) -> Option<(&'static str, std::io::Error)> {
        match (done.kind, done.error) {
            (OpKind::Complete | OpKind::DeadLetter, None) => {
                let f = done.key.and_then(|k| self.flight.finishing.remove(&k))?;
                if let Some(id) = &f.release {
                    self.flight.ids.remove(id);
                    self.cancel_moot(id);
                }
                self.report.metrics.record(&f.recorded);
                let (level, id) = match f.status {
                    Final::Completed => {
                        self.report.stats.completed += 1;
                        (Level::Info, ids::TASK_COMPLETED)
                    }
                    Final::Cancelled => {
                        self.report.stats.cancelled += 1;
                        (Level::Info, ids::TASK_CANCELLED)
                    }
                    Final::Failed | Final::Invalid => {
                        self.report.stats.failed += 1;
                        self.report.stats.dead_lettered += 1;
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
                None
            }
            (OpKind::SaveState, None) => {
                let key = done.key?;
                let recorded = self.flight.retrying.get_mut(&key).and_then(VecDeque::pop_front);
                if self.flight.retrying.get(&key).is_some_and(VecDeque::is_empty) {
                    self.flight.retrying.remove(&key);
                }
                if let Some(r) = recorded {
                    if matches!(r.end, End::Retried { .. }) {
                        self.report.stats.retried += 1;
                    }
                    self.report.metrics.record(&r);
                }
                None
            }
            (OpKind::Heartbeat, None) => {
                self.report.heartbeat_written = Instant::now();
                None
            }
            (kind, Some(e)) => {
                let what = match kind {
                    OpKind::Complete => "cannot write a result (will retry)",
                    OpKind::DeadLetter => "cannot write a dead letter (will retry)",
                    OpKind::SaveState | OpKind::Requeue => "cannot save a task's state (will retry)",
                    OpKind::Receipt => "cannot write a claim receipt",
                    OpKind::Heartbeat => "cannot write the heartbeat",
                    OpKind::Ledger => "cannot save the spend ledger",
                };
                Some((what, e))
            }
            (_, None) => None,
        }
    }

    /// The agent run of an attempt, for the metrics; none when the agent did not start.
    pub(super) fn run_of(a: &Attempt) -> Option<Run> {
        a.exit?;
        Some(Run {
            duration: a.duration,
            report: a.output.as_ref().and_then(|o| o.report.clone()),
            session: a.session.as_ref().map(|s| if s.resumed { "resumed" } else { "new" }),
        })
    }

    pub(super) fn log_fields(&self, level: Level, message: &str, fields: &[(&'static str, String)]) {
        let refs: Vec<crate::log::Field> =
            fields.iter().map(|(k, v)| (*k, v as &dyn std::fmt::Display)).collect();
        self.log.log(level, message, &refs);
    }
}

/// The `outcome` of a run of this class in the task's list of runs.
fn outcome_of(class: &Class) -> &'static str {
    match class {
        Class::Success => "completed",
        Class::Failed(r) | Class::Permanent(r) => r.as_str(),
        Class::RateLimited { .. } => Reason::RateLimited.as_str(),
        Class::Outage(cause) => cause.reason().as_str(),
    }
}

/// How a task ended, for counters and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Final {
    Completed,
    Cancelled,
    Failed,
    Invalid,
}
