//! A task's way through the loop until its agent ends: queued → claimed (or rejected as
//! invalid) → running → reaped; timeouts and the shutdown's stops. What the end means is
//! [`super::outcome`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::outcome::{Attempt, Final};
use super::policy;
use super::sessions::RunSession;
use super::{child_token, Daemon, Finishing, Phase, Running, Waiting, SPOOL};
use crate::agent::classify::{Class, Verdict};
use crate::agent::reason::Reason;
use crate::format::records::{DeadLetter, Receipt, TaskResult};
use crate::format::task::{is_valid_id, Invalid, Task};
use crate::metrics::{End, Recorded};
use crate::runner::supervise::{Signal, Stop, Why};
use crate::runner::{Exit, Spec};
use crate::spool::{read, Claim, EntryId, Ignored, Op, Rejected};
use crate::sys::clock;

/// Claims per loop turn at most, so a huge backlog of bad files cannot starve the loop.
const CLAIMS_PER_TURN: usize = 256;

/// The largest system prompt passed: the kernel takes at most 128 KiB, its NUL included, in
/// one argument of a command (MAX_ARG_STRLEN).
const MAX_PROMPT_BYTES: u64 = 128 * 1024 - 1;

impl Daemon {
    pub(super) fn on_intake(&mut self) {
        match self.spool.intake(self.poll.registry(), SPOOL) {
            Ok(intake) => {
                let now = SystemTime::now();
                for name in intake.arrivals {
                    self.queue.settling.arrived(&name);
                    self.enqueue(name, now);
                }
                for ignored in intake.ignored {
                    self.ignored(ignored);
                }
                self.spool_claims(intake.claimed, intake.reclaimed, intake.gone);
                for request in intake.cancels {
                    self.on_cancel(request);
                }
                for id in intake.withdrawn {
                    self.flight.cancels.remove(&id);
                }
                if intake.rescan {
                    self.log.warn("change notifications were lost (overflow or a replaced folder); rescanning the queue", &[]);
                    if let Err(e) = self.rescan() {
                        self.io_error("cannot list the queue", &e);
                        self.timers.rescan = Some(Instant::now() + super::RETRY_IO);
                    }
                }
            }
            Err(e) => {
                self.io_error("cannot read change notifications", &e);
                self.timers.rescan = Some(Instant::now() + super::RETRY_IO);
            }
        }
    }

    pub(super) fn enqueue(&mut self, name: EntryId, at: SystemTime) {
        if self.queue.known.insert(name.clone()) {
            self.queue.order.push_back((name, at));
        }
    }

    /// Forgets `name` as queued: a backend that hands out its own next entry gave it out.
    pub(super) fn dequeue(&mut self, name: &EntryId) {
        if self.queue.known.remove(name) {
            self.queue.order.retain(|(n, _)| n != name);
        }
    }

    fn ignored(&mut self, ignored: Ignored) {
        if !self.queue.warned.contains(&ignored.id) {
            let message = format!("ignoring a file in the queue that is not a task ({})", ignored.why);
            self.log.warn(&message, &[("FILE", &ignored.id)]);
            self.queue.warned.insert(ignored.id);
        }
    }

    /// Lists the queue and adds what is not known yet.
    pub(super) fn rescan(&mut self) -> io::Result<()> {
        if self.spool.claims_itself() {
            return Ok(());
        }
        let scan = self.spool.scan()?;
        for ignored in scan.ignored {
            self.ignored(ignored);
        }
        for e in scan.entries {
            // A file held back as not whole yet waits for its timer, unless it changed.
            if !self.queue.settling.unchanged(&e.id, e.arrived) {
                self.enqueue(e.id, e.arrived);
            }
        }
        // The listing has every request standing: one remembered but gone was acted on
        // elsewhere (another host) or removed.
        let standing: HashSet<&str> = scan.cancels.iter().map(|r| r.task_id.as_str()).collect();
        self.flight.cancels.retain(|id, _| standing.contains(id.as_str()));
        for request in scan.cancels {
            self.on_cancel(request);
        }
        if let Some(every) = self.rescan_every() {
            self.timers.rescan = Some(Instant::now() + every);
        }
        Ok(())
    }

    /// Starts tasks while there are free slots and the breaker allows.
    pub(super) fn schedule(&mut self) {
        let now = Instant::now();
        let mut claims = 0;
        while self.can_start() {
            let due = self.flight.waiting.first_key_value().is_some_and(|(k, _)| k.0 <= now);
            let take_retry = match (due, !self.queue.order.is_empty()) {
                (false, false) => break,
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    self.flight.prefer_retry = !self.flight.prefer_retry;
                    self.flight.prefer_retry
                }
            };
            if take_retry {
                if let Some((_, w)) = self.flight.waiting.pop_first() {
                    self.start(w.claim, w.task, w.queued_at);
                }
            } else if let Some((name, at)) = self.queue.order.pop_front() {
                self.queue.known.remove(&name);
                if !self.claim_and_start(&name, at) {
                    // Tried again after the pause, at the back: a failure of this one file
                    // (a mount point, say) must not hold up the others.
                    self.queue.known.insert(name.clone());
                    self.queue.order.push_back((name, at));
                    break;
                }
                claims += 1;
                if claims >= CLAIMS_PER_TURN {
                    self.more_work = true;
                    break;
                }
            }
        }
        // A spool that claims by itself is told how many tasks may start now.
        let free = if self.can_start() { self.cfg.tuning.max_concurrent - self.flight.active } else { 0 };
        self.spool.claim_slots(free);
    }

    /// Claims a queued task and starts or schedules it. `false`: the claim failed for a reason
    /// of the queue (read-only, full, no permission, I/O error), and claims pause for a while.
    fn claim_and_start(&mut self, name: &EntryId, arrived: SystemTime) -> bool {
        let claim = match self.spool.claim(name) {
            Ok(Some(c)) => {
                if c.source != *name {
                    // Handed out in the backend's own order: `name` went elsewhere.
                    self.queue.settling.forget(name);
                    self.dequeue(&c.source);
                }
                self.report.metrics.claimed(SystemTime::now().duration_since(arrived).unwrap_or_default());
                c
            }
            Ok(None) => {
                self.log.debug("task gone before it could be claimed", &[("FILE", name)]);
                self.queue.settling.forget(name);
                return true;
            }
            Err(e) => {
                self.io_error("cannot claim tasks (will retry)", &e);
                self.health.claims_paused_until = Some(Instant::now() + super::RETRY_IO);
                return false;
            }
        };
        self.claimed(claim);
        true
    }

    /// Validates a claimed task and starts it, or schedules it for its retry time.
    pub(super) fn claimed(&mut self, claim: Claim) {
        match self.spool.load(&claim, self.cfg.tuning.max_task_bytes, &self.cfg.worker) {
            Ok(l) => self.claimed_loaded(claim, l),
            Err(r) => self.unfinished_or_reject(claim, r),
        }
    }

    /// A claimed task, read and valid.
    pub(super) fn claimed_loaded(&mut self, claim: Claim, loaded: crate::spool::Loaded) {
        self.queue.settling.forget(&claim.source);
        let id = loaded.task.id.clone();
        let duplicate_of = if self.flight.ids.contains(&id) {
            Some("that is queued or in flight")
        } else if self.spool.result_exists(&id) && !self.replaces_invalid(&id) {
            Some("that already has a result")
        } else {
            None
        };
        if let Some(of) = duplicate_of {
            let doc = Some(Value::Object(loaded.task.doc));
            let why = Invalid::Duplicate { id, of };
            let r = Rejected {
                why,
                fallback_id: None,
                doc,
                preview: None,
                keep_original: false,
                unfinished: None,
            };
            return self.reject(claim, r);
        }
        self.flight.ids.insert(id);
        let Some((claim, mut task)) = self.cancel_on_claim(claim, loaded.task) else { return };
        task.start_charging(Instant::now());
        match self.retry_wait(&task) {
            Some(wait) => self.wait_until(claim, task, loaded.queued_at, Instant::now() + wait),
            None => self.start(claim, task, loaded.queued_at),
        }
    }

    /// A valid task of an id whose result is the rejection of an invalid file: the corrected
    /// task runs, and the failed `invalid` result is moved aside until its outcome replaces it.
    fn replaces_invalid(&mut self, id: &str) -> bool {
        if !self.spool.result_is_invalid(id) {
            return false;
        }
        if let Err(e) = self.spool.set_aside_result(id) {
            // Its own result replaces it when written, all the same.
            self.log.warn(
                "cannot move aside the invalid result of a corrected task",
                &[("TASK_ID", &id), ("ERROR", &e)],
            );
        }
        self.log.info("a corrected task replaces the one rejected as invalid", &[("TASK_ID", &id)]);
        true
    }

    /// How long a task read back still waits for its retry ([`policy::retry_wait`]).
    fn retry_wait(&self, task: &Task) -> Option<Duration> {
        policy::retry_wait(task.state.retry_at, clock::now_f64(), self.cfg.tuning.max_retry_delay)
    }

    pub(super) fn wait_until(&mut self, claim: Claim, task: Task, queued_at: SystemTime, at: Instant) {
        self.flight.seq += 1;
        self.flight.waiting.insert((at, self.flight.seq), Waiting { claim, task, queued_at });
    }

    /// The id a rejected task's result is written under, if any: its valid `task_id`, or the
    /// id the backend gives a task without one.
    fn rejected_id(r: &Rejected) -> Option<String> {
        if let Invalid::Duplicate { id, .. } = &r.why {
            return Some(id.clone());
        }
        match r.doc.as_ref().and_then(|d| d.get("task_id")) {
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Null) | None => r.fallback_id.clone(),
            Some(_) => None,
        }
        .filter(|id| is_valid_id(id))
    }

    /// Dead-letters a claimed file that is not a valid task, with a failed result when its id
    /// is usable and no other task of that id exists.
    pub(super) fn reject(&mut self, claim: Claim, r: Rejected) {
        let id = Self::rejected_id(&r);
        let duplicate = matches!(r.why, Invalid::Duplicate { .. });
        let message = r.why.to_string();
        let now = SystemTime::now();
        let result = id
            .clone()
            .filter(|id| !duplicate && !self.flight.ids.contains(id) && !self.spool.result_exists(id))
            .map(|task_id| {
                self.flight.ids.insert(task_id.clone());
                let (worker, host) = (self.cfg.worker.clone(), self.report.hostname.clone());
                TaskResult {
                    metadata: r.doc.as_ref().and_then(|d| d.get("metadata")).cloned().unwrap_or(Value::Null),
                    ..TaskResult::new(task_id, worker, host, clock::rfc3339(now))
                        .failed(Reason::Invalid, message.clone())
                }
            });
        let record = DeadLetter {
            task_id: id.clone(),
            worker: self.cfg.worker.clone(),
            reason: Reason::Invalid.as_str().into(),
            message: message.clone(),
            dead_lettered_at: clock::rfc3339(now),
            attempts: 0,
            history: Vec::new(),
            source_file: claim.source_lossy(),
            task: r.doc,
            raw_preview: r.preview,
            original_file: None,
            hostname: self.report.hostname.clone(),
            session: None,
            runs: Vec::new(),
        };
        let release = result.as_ref().map(|r| r.task_id.clone());
        self.flight.finishing.insert(
            claim.key.clone(),
            Finishing {
                release,
                status: Final::Invalid,
                message: "task rejected as invalid".into(),
                recorded: Recorded { end: End::Failed { reason: Reason::Invalid }, run: None },
                fields: vec![
                    ("TASK_ID", id.unwrap_or_default()),
                    ("FILE", claim.source_lossy()),
                    ("REASON", Reason::Invalid.as_str().into()),
                    ("ERROR", message),
                ],
            },
        );
        self.spool.stage(Op::DeadLetter { claim, record, result, keep_original: r.keep_original });
    }

    /// What to run for attempt `attempt` of `task`; `file`: where the agent may read the task
    /// (WATCHER_TASK_FILE), if the spool gives a file.
    pub(super) fn spec(
        &mut self,
        task: &Task,
        attempt: u32,
        file: Option<&std::path::Path>,
        session: Option<&RunSession>,
    ) -> Spec {
        let mut argv: Vec<OsString> = self.cfg.tuning.agent_argv.iter().map(Into::into).collect();
        let prompt_file = self.cfg.paths.prompt(&self.cfg.worker);
        let prompt = read::read(&prompt_file, MAX_PROMPT_BYTES).and_then(|b| {
            String::from_utf8(b).map_err(|_| read::Error::Io(io::Error::other("not UTF-8 text")))
        });
        match prompt {
            Ok(text) => {
                argv.push("--append-system-prompt".into());
                argv.push(text.into());
            }
            Err(e) if e.is_missing() => {}
            Err(e) => self.log.warn(
                "cannot read the worker's system prompt; running without it",
                &[("FILE", &prompt_file.display()), ("ERROR", &e)],
            ),
        }
        let policy = &self.cfg.tuning.policy;
        let limits = [
            (policy.max_turns_flag.as_ref(), task.max_turns.map(|n| n.to_string())),
            (policy.max_budget_flag.as_ref(), task.max_budget_usd.map(|x| x.to_string())),
        ];
        for (flag, value) in limits {
            if let (Some(flag), Some(value)) = (flag, value) {
                argv.push(flag.into());
                argv.push(value.into());
            }
        }
        if let Some(words) = session.and_then(|s| self.session_args(s)) {
            argv.extend(words.into_iter().map(OsString::from));
        }
        let mut env: Vec<(OsString, OsString)> =
            self.cfg.tuning.agent_env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        env.push(("WATCHER_TASK_ID".into(), task.id.clone().into()));
        env.push(("WATCHER_WORKER".into(), self.cfg.worker.clone().into()));
        env.push(("WATCHER_ATTEMPT".into(), attempt.to_string().into()));
        if let Some(path) = file {
            env.push(("WATCHER_TASK_FILE".into(), path.into()));
        }
        Spec {
            argv,
            env,
            unset: self.cfg.tuning.agent_unset.iter().map(Into::into).collect(),
            stdin: task.description.clone().into_bytes(),
            max_output: self.cfg.tuning.max_output_bytes as usize,
        }
    }

    /// Runs an attempt of a claimed task.
    pub(super) fn start(&mut self, claim: Claim, mut task: Task, queued_at: SystemTime) {
        let number = task.state.attempts + 1;
        let started_wall = SystemTime::now();
        task.state.first_started_at.get_or_insert_with(|| clock::rfc3339(started_wall));
        self.holds.breaker.started();
        let session = self.session_of(&mut task, queued_at);
        let spec = self.spec(&task, number, claim.file.as_deref(), session.as_ref());
        let program = spec.argv.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let slot = self.flight.slots.iter().position(Option::is_none).unwrap_or(self.flight.slots.len());
        let pid = match self.agents.start(slot, spec, self.poll.registry(), &|p| child_token(slot, p)) {
            Ok(pid) => pid,
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
                    session: None,
                };
                let verdict = Verdict {
                    class: Class::Failed(Reason::SpawnError),
                    message: format!("cannot start the agent {program:?}: {e}"),
                };
                return self.failed(attempt, Reason::SpawnError, verdict);
            }
        };
        let now = Instant::now();
        self.spool.stage(Op::Receipt(Receipt {
            task_id: task.id.clone(),
            worker: self.cfg.worker.clone(),
            claimed_at: clock::rfc3339(started_wall),
            attempt: number,
            pid: std::process::id(),
            agent_pid: pid as u32,
            hostname: self.report.hostname.clone(),
            task_file: claim.file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            session_id: session.as_ref().map(|s| s.id.clone()),
            resumed: session.as_ref().is_some_and(|s| s.resumed),
        }));
        // The agent runs with it now: whatever becomes of the run, the next one resumes it.
        if let Some(s) = task.state.session.as_mut() {
            s.started = true;
        }
        self.log.debug("task started", &[("TASK_ID", &task.id), ("ATTEMPT", &number), ("AGENT_PID", &pid)]);
        let timeout = task.timeout.unwrap_or(self.cfg.tuning.task_timeout);
        let run = Running {
            claim,
            task,
            queued_at,
            attempt: number,
            started: now,
            started_wall,
            stop: Stop::new(now, timeout),
            session,
            cancel: None,
        };
        if slot == self.flight.slots.len() {
            self.flight.slots.push(Some(run));
        } else {
            self.flight.slots[slot] = Some(run);
        }
        self.flight.active += 1;
    }

    /// Reaps every agent that has exited, killing what is left of its run, and the orphans
    /// that exited.
    pub(super) fn reap(&mut self) {
        for slot in 0..self.flight.slots.len() {
            let Some(run) = self.flight.slots[slot].as_ref() else {
                continue;
            };
            let exit = match self.agents.try_exit(slot) {
                Ok(None) => continue,
                Ok(Some(exit)) => exit,
                Err(e) => {
                    self.log.error("cannot wait for an agent", &[("TASK_ID", &run.task.id), ("ERROR", &e)]);
                    Exit::Code(-1)
                }
            };
            if let Some(cgroup) = self.agents.cgroup(slot) {
                let fields: [crate::log::Field; 2] =
                    [("TASK_ID", &run.task.id), ("CGROUP", &cgroup.display())];
                self.log.debug("agent exited; killing what is left in its run's cgroup", &fields);
            }
            // Its cgroup is killed (or its orphans swept) as it is finished.
            self.finish(slot, exit);
        }
        self.agents.reap_orphans();
    }

    /// Timeouts: SIGTERM to the group at the deadline, SIGKILL after KILL_GRACE.
    pub(super) fn enforce_deadlines(&mut self, now: Instant) {
        let grace = self.cfg.tuning.kill_grace;
        for (slot, run) in self.flight.slots.iter_mut().enumerate() {
            let Some(run) = run else { continue };
            let Some(signal) = run.stop.tick(now, grace) else { continue };
            if signal == Signal::Term {
                self.log.warn(
                    "task timed out; sending SIGTERM to its process group",
                    &[
                        ("TASK_ID", &run.task.id),
                        ("ATTEMPT", &run.attempt),
                        ("KILL_GRACE_MS", &grace.as_millis()),
                    ],
                );
            }
            self.agents.signal(slot, signal);
        }
    }

    /// The end of the shutdown grace: stop what still runs; it is re-queued, not charged.
    pub(super) fn abandon_running(&mut self, now: Instant) {
        let grace = self.cfg.tuning.kill_grace;
        for (slot, run) in self.flight.slots.iter_mut().enumerate() {
            // A run already stopped for its timeout ends as one.
            if let Some(signal) = run.as_mut().and_then(|r| r.stop.terminate(Why::Shutdown, now, grace)) {
                self.agents.signal(slot, signal);
            }
        }
        if let Phase::Draining { deadline, .. } = self.phase {
            self.phase = Phase::Draining { deadline, abandoned: true };
        }
    }
}
