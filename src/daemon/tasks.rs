//! A task's way through the loop: queued → claimed → running → completed, retried, or
//! dead-lettered; with invalid tasks rejected at the claim.

use std::ffi::{OsStr, OsString};
use std::io;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{child_token, Daemon, Finishing, Phase, Running, Waiting, SPOOL};
use crate::agent::{self, Output};
use crate::clock;
use crate::log::{ids, Level};
use crate::records::{DeadLetter, Receipt, TaskResult, COMPLETED, FAILED};
use crate::retry;
use crate::runner::{Captured, Child, Exit, Spec};
use crate::spool::{Claim, Done, Op, OpKind, Rejected};
use crate::task::{is_valid_id, Failure, Invalid, Task};

/// Claims per loop turn at most, so a huge backlog of bad files cannot starve the loop.
const CLAIMS_PER_TURN: usize = 256;
/// Failures kept in a task's history (the oldest are dropped).
const HISTORY_KEPT: usize = 50;

/// One finished attempt, whatever its outcome.
struct Attempt {
    claim: Claim,
    task: Task,
    queued_at: SystemTime,
    number: u32,
    started_wall: SystemTime,
    duration: Duration,
    exit: Option<Exit>,
    captured: Option<Captured>,
    output: Option<Output>,
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

impl Daemon {
    pub(super) fn on_intake(&mut self) {
        match self.spool.intake(self.poll.registry(), SPOOL) {
            Ok(intake) => {
                let now = SystemTime::now();
                for name in intake.arrivals {
                    self.enqueue(name, now);
                }
                for name in intake.ignored {
                    self.ignored(&name);
                }
                if intake.rescan {
                    self.log.warn("change notifications were lost (overflow or a replaced folder); rescanning the queue", &[]);
                    if let Err(e) = self.rescan() {
                        self.io_error("cannot list the queue", &e);
                        self.next_rescan = Some(Instant::now() + super::RETRY_IO);
                    }
                }
            }
            Err(e) => {
                self.io_error("cannot read change notifications", &e);
                self.next_rescan = Some(Instant::now() + super::RETRY_IO);
            }
        }
    }

    fn enqueue(&mut self, name: OsString, at: SystemTime) {
        if self.queued.insert(name.clone()) {
            self.queue.push_back((name, at));
        }
    }

    fn ignored(&mut self, name: &OsStr) {
        if self.warned.insert(name.to_os_string()) {
            self.log.warn(
                "ignoring a file in the queue that is not a task (task files end in .json)",
                &[("FILE", &name.to_string_lossy())],
            );
        }
    }

    /// Lists the queue and adds what is not known yet.
    pub(super) fn rescan(&mut self) -> io::Result<()> {
        let scan = self.spool.scan()?;
        for name in scan.ignored {
            self.ignored(&name);
        }
        for e in scan.entries {
            self.enqueue(e.name, e.arrived);
        }
        if let Some(every) = self.rescan_every() {
            self.next_rescan = Some(Instant::now() + every);
        }
        Ok(())
    }

    /// Starts tasks while there are free slots and the breaker allows.
    pub(super) fn schedule(&mut self) {
        let now = Instant::now();
        let mut claims = 0;
        while self.can_start() {
            let due = self.waiting.first_key_value().is_some_and(|(k, _)| k.0 <= now);
            let take_retry = match (due, !self.queue.is_empty()) {
                (false, false) => break,
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    self.prefer_retry = !self.prefer_retry;
                    self.prefer_retry
                }
            };
            if take_retry {
                if let Some((_, w)) = self.waiting.pop_first() {
                    self.start(w.claim, w.task, w.queued_at);
                }
            } else if let Some((name, at)) = self.queue.pop_front() {
                self.queued.remove(&name);
                if !self.claim_and_start(&name, at) {
                    // Tried again after the pause, at the back: a failure of this one file
                    // (a mount point, say) must not hold up the others.
                    self.queued.insert(name.clone());
                    self.queue.push_back((name, at));
                    break;
                }
                claims += 1;
                if claims >= CLAIMS_PER_TURN {
                    self.more_work = true;
                    break;
                }
            }
        }
    }

    /// Claims a queued task and starts or schedules it. `false`: the claim failed for a reason
    /// of the queue (read-only, full, no permission, I/O error), and claims pause for a while.
    fn claim_and_start(&mut self, name: &OsStr, _arrived: SystemTime) -> bool {
        let claim = match self.spool.claim(name) {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.log.debug("task gone before it could be claimed", &[("FILE", &name.to_string_lossy())]);
                return true;
            }
            Err(e) => {
                self.io_error("cannot claim tasks (will retry)", &e);
                self.claims_paused_until = Some(Instant::now() + super::RETRY_IO);
                return false;
            }
        };
        self.claimed(claim);
        true
    }

    /// Validates a claimed task and starts it, or schedules it for its retry time.
    fn claimed(&mut self, claim: Claim) {
        let loaded = match self.spool.load(&claim, self.cfg.tuning.max_task_bytes, &self.cfg.worker) {
            Ok(l) => l,
            Err(r) => return self.reject(claim, r),
        };
        let id = loaded.task.id.clone();
        let duplicate_of = if self.ids.contains(&id) {
            Some("that is queued or in flight")
        } else if self.spool.result_exists(&id) {
            Some("that already has a result")
        } else {
            None
        };
        if let Some(of) = duplicate_of {
            let doc = Some(Value::Object(loaded.task.doc));
            return self.reject(
                claim,
                Rejected { why: Invalid::Duplicate { id, of }, doc, preview: None, keep_original: false },
            );
        }
        self.ids.insert(id);
        let wait = loaded.task.state.retry_at.map(|at| at - clock::now_f64()).filter(|secs| *secs > 0.0);
        match wait {
            Some(secs) => {
                let at = Instant::now() + Duration::from_secs_f64(secs.min(1e9));
                self.wait_until(claim, loaded.task, loaded.queued_at, at);
            }
            None => self.start(claim, loaded.task, loaded.queued_at),
        }
    }

    fn wait_until(&mut self, claim: Claim, task: Task, queued_at: SystemTime, at: Instant) {
        self.seq += 1;
        self.waiting.insert((at, self.seq), Waiting { claim, task, queued_at });
    }

    /// The id a rejected file's result is written under, if any: its valid `task_id`, or its
    /// file name when it has none.
    fn rejected_id(claim: &Claim, r: &Rejected) -> Option<String> {
        if let Invalid::Duplicate { id, .. } = &r.why {
            return Some(id.clone());
        }
        let stem = claim.source.to_str().map(|s| s.strip_suffix(".json").unwrap_or(s).to_string());
        match r.doc.as_ref().and_then(|d| d.get("task_id")) {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Null) | None => stem,
            Some(_) => None,
        }
        .filter(|id| is_valid_id(id))
    }

    /// Dead-letters a claimed file that is not a valid task, with a failed result when its id
    /// is usable and no other task of that id exists.
    pub(super) fn reject(&mut self, claim: Claim, r: Rejected) {
        let id = Self::rejected_id(&claim, &r);
        let duplicate = matches!(r.why, Invalid::Duplicate { .. });
        let message = r.why.to_string();
        let now = SystemTime::now();
        let result = id
            .clone()
            .filter(|id| !duplicate && !self.ids.contains(id) && !self.spool.result_exists(id))
            .map(|task_id| {
                self.ids.insert(task_id.clone());
                TaskResult {
                    task_id,
                    worker: self.cfg.worker.clone(),
                    status: FAILED.into(),
                    reason: Some("invalid".into()),
                    message: Some(message.clone()),
                    exit_code: None,
                    signal: None,
                    output: Value::Null,
                    output_truncated: false,
                    output_bytes: 0,
                    stderr_tail: String::new(),
                    attempts: 0,
                    started_at: None,
                    finished_at: clock::rfc3339(now),
                    duration_seconds: 0.0,
                    hostname: self.hostname.clone(),
                    metadata: r.doc.as_ref().and_then(|d| d.get("metadata")).cloned().unwrap_or(Value::Null),
                    agent: None,
                }
            });
        let record = DeadLetter {
            task_id: id.clone(),
            worker: self.cfg.worker.clone(),
            reason: "invalid".into(),
            message: message.clone(),
            dead_lettered_at: clock::rfc3339(now),
            attempts: 0,
            history: Vec::new(),
            source_file: claim.source_lossy(),
            task: r.doc,
            raw_preview: r.preview,
            original_file: None,
            hostname: self.hostname.clone(),
        };
        let release = result.as_ref().map(|r| r.task_id.clone());
        self.finishing.insert(
            claim.key.clone(),
            Finishing {
                release,
                status: Final::Invalid,
                message: "task rejected as invalid".into(),
                fields: vec![
                    ("TASK_ID", id.unwrap_or_default()),
                    ("FILE", claim.source_lossy()),
                    ("REASON", "invalid".into()),
                    ("ERROR", message),
                ],
            },
        );
        self.spool.stage(Op::DeadLetter { claim, record, result, keep_original: r.keep_original });
    }

    fn spec(&mut self, claim: &Claim, task: &Task, attempt: u32) -> Spec {
        let mut argv: Vec<OsString> = self.cfg.tuning.agent_argv.iter().map(Into::into).collect();
        let prompt_file = self.cfg.paths.prompts.join(format!("{}.md", self.cfg.worker));
        match std::fs::read_to_string(&prompt_file) {
            Ok(text) => {
                argv.push("--append-system-prompt".into());
                argv.push(text.into());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self.log.warn(
                "cannot read the worker's system prompt; running without it",
                &[("FILE", &prompt_file.display()), ("ERROR", &e)],
            ),
        }
        let mut env: Vec<(OsString, OsString)> =
            self.cfg.tuning.agent_env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        env.push(("WATCHER_TASK_ID".into(), task.id.clone().into()));
        env.push(("WATCHER_WORKER".into(), self.cfg.worker.clone().into()));
        env.push(("WATCHER_ATTEMPT".into(), attempt.to_string().into()));
        if let Some(path) = self.spool.task_path(claim) {
            env.push(("WATCHER_TASK_FILE".into(), path.into_os_string()));
        }
        Spec {
            argv,
            env,
            stdin: task.description.clone().into_bytes(),
            max_output: self.cfg.tuning.max_output_bytes as usize,
        }
    }

    /// Runs an attempt of a claimed task.
    pub(super) fn start(&mut self, claim: Claim, mut task: Task, queued_at: SystemTime) {
        let number = task.state.attempts + 1;
        let started_wall = SystemTime::now();
        task.state.first_started_at.get_or_insert_with(|| clock::rfc3339(started_wall));
        self.breaker.started();
        let spec = self.spec(&claim, &task, number);
        let program = spec.argv.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let child = Child::spawn(spec).and_then(|child| {
            let slot = self.slots.iter().position(Option::is_none).unwrap_or(self.slots.len());
            match child.register(self.poll.registry(), |p| child_token(slot, p)) {
                Ok(()) => Ok((slot, child)),
                Err(e) => {
                    child.signal_group(libc::SIGKILL);
                    let _ = child.finish(self.poll.registry(), &mut self.scratch);
                    Err(e)
                }
            }
        });
        let (slot, child) = match child {
            Ok(c) => c,
            Err(e) => {
                let attempt = Attempt {
                    claim,
                    task,
                    queued_at,
                    number,
                    started_wall,
                    duration: Duration::ZERO,
                    exit: None,
                    captured: None,
                    output: None,
                };
                return self.failed(
                    attempt,
                    "spawn_error",
                    format!("cannot start the agent {program:?}: {e}"),
                );
            }
        };
        let now = Instant::now();
        self.spool.stage(Op::Receipt(Receipt {
            task_id: task.id.clone(),
            worker: self.cfg.worker.clone(),
            claimed_at: clock::rfc3339(started_wall),
            attempt: number,
            pid: std::process::id(),
            agent_pid: child.pid() as u32,
            hostname: self.hostname.clone(),
            task_file: self.spool.task_path(&claim).map(|p| p.display().to_string()).unwrap_or_default(),
        }));
        self.log.debug(
            "task started",
            &[("TASK_ID", &task.id), ("ATTEMPT", &number), ("AGENT_PID", &child.pid())],
        );
        let timeout = task.timeout.unwrap_or(self.cfg.tuning.task_timeout);
        let run = Running {
            claim,
            task,
            queued_at,
            child,
            attempt: number,
            started: now,
            started_wall,
            deadline: now + timeout,
            kill_at: None,
            killed: false,
            timed_out: false,
            abandoned: false,
        };
        if slot == self.slots.len() {
            self.slots.push(Some(run));
        } else {
            self.slots[slot] = Some(run);
        }
        self.active += 1;
    }

    /// Reaps every agent that has exited.
    pub(super) fn reap(&mut self) {
        for slot in 0..self.slots.len() {
            let Some(run) = self.slots[slot].as_mut() else {
                continue;
            };
            match run.child.try_exit() {
                Ok(None) => {}
                Ok(Some(exit)) => self.finish(slot, exit),
                Err(e) => {
                    self.log.error("cannot wait for an agent", &[("TASK_ID", &run.task.id), ("ERROR", &e)]);
                    self.finish(slot, Exit::Code(-1));
                }
            }
        }
    }

    fn finish(&mut self, slot: usize, exit: Exit) {
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
            },
        );
        self.spool.stage(Op::Complete { claim: a.claim, result });
    }

    /// A failed attempt: retried after its backoff, or given up on.
    fn failed(&mut self, mut a: Attempt, reason: &'static str, message: String) {
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
            self.stats.retried += 1;
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
        self.dead_letter(a.claim, a.task, reason, summary, Some(result), fields);
    }

    /// Stages the dead letter of a valid task (and its failed result).
    pub(super) fn dead_letter(
        &mut self,
        claim: Claim,
        task: Task,
        reason: &str,
        message: String,
        result: Option<TaskResult>,
        fields: Vec<(&'static str, String)>,
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
            },
        );
        self.spool.stage(Op::DeadLetter { claim, record, result, keep_original: false });
    }

    /// Timeouts: SIGTERM to the group at the deadline, SIGKILL after KILL_GRACE.
    pub(super) fn enforce_deadlines(&mut self, now: Instant) {
        let grace = self.cfg.tuning.kill_grace;
        for run in self.slots.iter_mut().flatten() {
            if run.killed {
                continue;
            }
            if let Some(k) = run.kill_at {
                if now >= k {
                    run.child.signal_group(libc::SIGKILL);
                    run.kill_at = None;
                    run.killed = true;
                }
                continue;
            }
            if now >= run.deadline {
                run.timed_out = true;
                self.log.warn(
                    "task timed out; sending SIGTERM to its process group",
                    &[
                        ("TASK_ID", &run.task.id),
                        ("ATTEMPT", &run.attempt),
                        ("KILL_GRACE_MS", &grace.as_millis()),
                    ],
                );
                run.child.signal_group(libc::SIGTERM);
                run.kill_at = Some(now + grace);
            }
        }
    }

    /// The end of the shutdown grace: stop what still runs; it is re-queued, not charged.
    pub(super) fn abandon_running(&mut self, now: Instant) {
        let grace = self.cfg.tuning.kill_grace;
        for run in self.slots.iter_mut().flatten() {
            if run.timed_out || run.abandoned {
                continue;
            }
            run.abandoned = true;
            run.child.signal_group(libc::SIGTERM);
            run.kill_at = Some(now + grace);
        }
        if let Phase::Draining { deadline, .. } = self.phase {
            self.phase = Phase::Draining { deadline, abandoned: true };
        }
    }

    /// Commits the turn's writes and acts on their outcomes.
    pub(super) fn commit(&mut self) {
        let dones = self.spool.commit();
        let wrote = !dones.is_empty();
        // Failures by what failed and why: one log line each, however many tasks they hit.
        let mut failures: Vec<(&'static str, io::Error, usize)> = Vec::new();
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
        self.writes_failing = self.spool.has_pending();
        if self.writes_failing {
            if self.next_commit.is_none() {
                self.next_commit = Some(Instant::now() + super::RETRY_IO);
            }
        } else if wrote && failures.is_empty() {
            self.io_recovered();
            if self.spool.has_pending() {
                // The heartbeat that tells the recovery.
                self.commit();
            }
        }
    }

    /// Acts on one op's outcome; returns what failed, to be logged.
    fn on_done(&mut self, done: Done) -> Option<(&'static str, io::Error)> {
        match (done.kind, done.error) {
            (OpKind::Complete | OpKind::DeadLetter, None) => {
                let f = done.claim.and_then(|c| self.finishing.remove(&c.key))?;
                if let Some(id) = &f.release {
                    self.ids.remove(id);
                }
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
                None
            }
            (kind, Some(e)) => {
                let what = match kind {
                    OpKind::Complete => "cannot write a result (will retry)",
                    OpKind::DeadLetter => "cannot write a dead letter (will retry)",
                    OpKind::SaveState | OpKind::Requeue => "cannot save a task's state (will retry)",
                    OpKind::Receipt => "cannot write a claim receipt",
                    OpKind::Heartbeat => "cannot write the heartbeat",
                };
                Some((what, e))
            }
            (_, None) => None,
        }
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
