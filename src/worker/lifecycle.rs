//! The daemon's life around the tasks: crash recovery at start-up, heartbeat and systemd
//! status, the circuit breaker's announcements, SIGHUP reload, and the SIGTERM drain.

use std::time::{Duration, Instant, SystemTime};

use super::policy::{self, Reclaimed};
use super::state::{Figures, WorkerState};
use super::{Daemon, Phase};
use crate::agent::reason::Reason;
use crate::error::Fatal;
use crate::format::records::{Heartbeat, TaskResult};
use crate::log::ids;
use crate::spool::Op;
use crate::sys::clock;
use crate::worker::breaker::{State, Transition};

impl Daemon {
    /// Start-up: every task left in flight by a dead daemon is re-queued with its reclaim
    /// counted, cleaned up if its result exists, or dead-lettered past MAX_RECLAIMS.
    pub(super) fn recover(&mut self) -> Result<(), Fatal> {
        let leftovers = self
            .spool
            .leftovers()
            .map_err(|e| Fatal::io(format!("TASK_DIR: cannot list the tasks in flight: {e}"), &e))?;
        let now = clock::now_f64();
        for claim in leftovers {
            let mut loaded = match self.spool.load(&claim, self.cfg.tuning.max_task_bytes, &self.cfg.worker) {
                Ok(l) => l,
                Err(_) => {
                    // Not a valid task: back to the queue, where the claim rejects it properly.
                    if let Err(e) = self.spool.requeue(&claim) {
                        self.io_error(&format!("cannot re-queue {}", claim.source_lossy()), &e);
                    }
                    continue;
                }
            };
            let task = &mut loaded.task;
            // (A result that is the rejection of an invalid file does not count: the task left
            // in flight is its correction.)
            if self.spool.result_exists(&task.id) && !self.spool.result_is_invalid(&task.id) {
                self.log.info(
                    "task left in flight already has its result; removed the claimed copy",
                    &[("TASK_ID", &task.id)],
                );
                if let Err(e) = self.spool.discard(&claim) {
                    self.io_error("cannot remove a finished task's claimed copy", &e);
                }
                continue;
            }
            // A task waiting for its retry time was not running when the daemon died.
            if policy::was_running(&task.state, now) {
                task.state.reclaims += 1;
                self.session_reclaimed(task, loaded.queued_at);
            }
            let limits = policy::Limits::of(&self.cfg.tuning, task.max_retries);
            if let Reclaimed::GiveUp { reason, message } = policy::after_reclaim(&task.state, &limits) {
                self.flight.ids.insert(task.id.clone());
                let result = self.reclaim_result(&loaded.task, reason, &message);
                let fields = vec![
                    ("TASK_ID", loaded.task.id.clone()),
                    ("REASON", reason.as_str().into()),
                    ("ERROR", message.clone()),
                ];
                self.dead_letter(claim, loaded.task, reason, message, Some(result), fields, None);
            } else {
                self.log.warn(
                    "task left in flight by a daemon that died; re-queued",
                    &[
                        ("MESSAGE_ID", &ids::TASK_RECLAIMED),
                        ("TASK_ID", &task.id),
                        ("RECLAIMS", &task.state.reclaims),
                    ],
                );
                self.spool.stage(Op::Requeue { claim, task: loaded.task, queued_at: loaded.queued_at });
            }
        }
        // The re-queued files must be back in the queue before it is scanned.
        self.commit_now();
        Ok(())
    }

    /// Reads the spend ledger, only when a spend cap is set: nothing else uses it.
    pub(super) fn load_ledger(&mut self) {
        if self.cfg.tuning.policy.worker_budget_usd.is_none() {
            return;
        }
        match self.spool.ledger() {
            Ok(Some(bytes)) => {
                self.holds.ledger = super::pause::Ledger::from_bytes(&bytes);
                self.check_budget();
            }
            Ok(None) => {}
            Err(e) => {
                self.log.warn("cannot read the spend ledger; counting spend from nothing", &[("ERROR", &e)])
            }
        }
    }

    pub(super) fn reclaim_result(
        &self,
        task: &crate::format::task::Task,
        reason: Reason,
        message: &str,
    ) -> TaskResult {
        TaskResult {
            attempts: task.state.attempts,
            started_at: task.state.first_started_at.clone(),
            metadata: task.metadata(),
            runs: task.state.runs.clone(),
            ..self.result_of(&task.id).failed(reason, message.into())
        }
    }

    /// End of a loop turn: heartbeat on a state change, group commit, re-queue what waits
    /// when stopping, and the systemd status line.
    pub(super) fn flush(&mut self) {
        self.commit();
        // After the outcomes were collected, so the heartbeat's counters include them.
        if Some(self.state()) != self.report.heartbeat_status {
            self.stage_heartbeat();
        }
        // Hands over what collecting staged (the heartbeat), if the writer is free now.
        self.commit();
        // Once their saved state is written: a SaveState in flight must not land after the move.
        if matches!(self.phase, Phase::Draining { .. }) && !self.spool.busy() {
            self.requeue_waiting();
        }
        let state = self.state();
        let line = state.status_line(&self.figures());
        let r = self.notifier.status_as(state.status_word(), &line, Instant::now()).map(|_| ());
        self.report_notify(r);
    }

    /// The worker's state now.
    pub(super) fn state(&self) -> WorkerState {
        let stopping = matches!(self.phase, Phase::Draining { .. });
        WorkerState::of(
            stopping,
            self.holds.breaker.state(),
            self.holds.paused.map(|p| p.why.state()),
            self.flight.active,
        )
    }

    /// systemd's STATUS= line of the state now.
    pub(super) fn status_line(&self) -> String {
        self.state().status_line(&self.figures())
    }

    fn figures(&self) -> Figures {
        let stalled = if self.spool_waiting() {
            Some("waiting for the spool")
        } else if self.health.writes_failing {
            Some("outcomes cannot be written")
        } else {
            self.health.claims_paused_until.map(|_| "tasks cannot be claimed")
        };
        Figures {
            active: self.flight.active,
            max_concurrent: self.cfg.tuning.max_concurrent,
            queued: self.queued(),
            waiting: self.flight.waiting.len(),
            breaker_until: self.breaker_open_until(),
            outage: self.holds.outage.as_ref().map(|o| o.cause),
            paused_until: self.holds.paused.map(|p| p.until_wall),
            stalled,
        }
    }

    fn breaker_open_until(&self) -> Option<SystemTime> {
        let until = self.holds.breaker.deadline()?;
        Some(SystemTime::now() + until.saturating_duration_since(Instant::now()))
    }

    pub(super) fn stage_heartbeat(&mut self) {
        self.stage_heartbeat_as(self.state());
    }

    fn stage_heartbeat_as(&mut self, status: WorkerState) {
        // Orphans a sweep missed (reparented without a signal to us) go at the heartbeat.
        self.agents.sweep_soon();
        self.report.heartbeat_status = Some(status);
        self.timers.heartbeat = Instant::now() + self.cfg.tuning.heartbeat_interval;
        let hb = Heartbeat {
            worker: self.cfg.worker.clone(),
            pid: std::process::id(),
            hostname: self.report.hostname.clone(),
            timestamp: clock::now_f64(),
            status: status.as_str().into(),
            active_tasks: self.flight.active,
            queue_size: self.queued(),
            retry_waiting: self.flight.waiting.len(),
            max_concurrent: self.cfg.tuning.max_concurrent,
            processed: self.report.stats.completed + self.report.stats.failed + self.report.stats.cancelled,
            failed: self.report.stats.failed,
            retried: self.report.stats.retried,
            dead_lettered: self.report.stats.dead_lettered,
            cancelled: self.report.stats.cancelled,
            circuit_state: self.holds.breaker.state().name().into(),
            circuit_reason: matches!(self.holds.breaker.state(), State::Open { .. } | State::HalfOpen)
                .then(|| self.holds.outage.as_ref().map_or("failures", |o| o.cause.as_str()).into()),
            paused_until: self.holds.paused.map(|p| clock::epoch_f64(p.until_wall)),
            paused_reason: self.holds.paused.map(|p| p.why.state().as_str().into()),
            oldest_queued_at: self.queue.order.iter().map(|(_, at)| *at).min().map(clock::epoch_f64),
            circuit_open_until: self.breaker_open_until().map(clock::epoch_f64),
            started_at: clock::epoch_f64(self.report.started_at),
            heartbeat_interval: self.cfg.tuning.heartbeat_interval.as_secs_f64(),
            version: env!("CARGO_PKG_VERSION").into(),
            last_error: self.health.last_error.clone(),
            metrics: self.metrics_addresses(),
        };
        self.spool.stage(Op::Heartbeat(hb));
    }

    pub(super) fn breaker_changed(&mut self, t: Transition) {
        let failures = self.holds.breaker.consecutive_failures();
        let timeout = self.holds.breaker.open_time().as_secs_f64();
        if self.holds.outage.is_some() {
            // The outage's own entries tell its start and end; its trials are not news.
            self.log
                .debug("circuit breaker held by an outage", &[("STATE", &self.holds.breaker.state().name())]);
            self.stage_heartbeat();
            return;
        }
        match t {
            Transition::Opened => self.log.error(
                "circuit breaker opened: no new task starts until it half-opens",
                &[
                    ("MESSAGE_ID", &ids::BREAKER_OPENED),
                    ("CONSECUTIVE_FAILURES", &failures),
                    ("TIMEOUT_S", &timeout),
                ],
            ),
            Transition::HalfOpened => self.log.warn(
                "circuit breaker half-open: one trial task may run",
                &[("MESSAGE_ID", &ids::BREAKER_HALF_OPEN), ("CONSECUTIVE_FAILURES", &failures)],
            ),
            Transition::Closed => {
                self.log.info("circuit breaker closed", &[("MESSAGE_ID", &ids::BREAKER_CLOSED)])
            }
        }
        self.stage_heartbeat();
    }

    /// SIGHUP: the env file is read again and the live settings applied. A bad file changes
    /// nothing.
    pub(super) fn reload(&mut self) {
        let r = self.notifier.reloading();
        self.report_notify(r);
        match self.cfg.reload(&self.layers) {
            Ok((new, _))
                if new.tuning.agent_argv.first() != self.cfg.tuning.agent_argv.first()
                    && super::preflight::resolve(
                        new.tuning.agent_argv.first().map_or("", String::as_str),
                        self.layers.env.get("PATH").map(String::as_str),
                    )
                    .is_err() =>
            {
                self.log.error(
                    "reload refused: the new CLAUDE_COMMAND cannot be run; the running configuration is kept",
                    &[("CLAUDE_COMMAND", &new.tuning.agent_argv.first().map_or("", String::as_str))],
                )
            }
            Ok((new, ignored)) => {
                for name in ignored {
                    self.log.warn("setting changed, but it applies only at restart", &[("VARIABLE", &name)]);
                }
                let rescan_was = self.rescan_every();
                let had_cap = self.cfg.tuning.policy.worker_budget_usd.is_some();
                self.log.level = new.tuning.log_level;
                self.holds.breaker.configure(new.tuning.breaker_timeout, new.tuning.breaker_max_timeout);
                if self.holds.outage.is_some() {
                    // The operator may have just fixed the cause (a new key in the env file).
                    self.holds.breaker.try_now(Instant::now());
                }
                self.cfg.tuning = new.tuning;
                if !had_cap {
                    self.load_ledger();
                }
                if self.rescan_every() != rescan_was {
                    self.timers.rescan = self.rescan_every().map(|d| Instant::now() + d);
                }
                self.cfg.paths.prompts = new.paths.prompts;
                self.log.info(
                    "configuration reloaded",
                    &[
                        ("MAX_CONCURRENT", &self.cfg.tuning.max_concurrent),
                        ("TASK_TIMEOUT_S", &self.cfg.tuning.task_timeout.as_secs_f64()),
                        ("MAX_RETRIES", &self.cfg.tuning.max_retries),
                    ],
                );
            }
            Err(e) => self.log.error("reload failed; the running configuration is kept", &[("ERROR", &e)]),
        }
        let status = self.status_line();
        let r = self.notifier.ready_as(self.state().status_word(), &status);
        self.report_notify(r);
        self.stage_heartbeat();
    }

    /// SIGTERM or SIGINT: stop claiming; running tasks get SHUTDOWN_GRACE; a second signal
    /// stops them at once.
    pub(super) fn shutdown(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Running => {
                self.phase =
                    Phase::Draining { deadline: now + self.cfg.tuning.shutdown_grace, abandoned: false };
                self.log.info(
                    "stopping: no new task starts; running tasks may finish within the grace",
                    &[
                        ("ACTIVE", &self.flight.active),
                        ("SHUTDOWN_GRACE_S", &self.cfg.tuning.shutdown_grace.as_secs_f64()),
                    ],
                );
                let status = self.status_line();
                let r = self.notifier.stopping_as(self.state().as_str(), &status);
                self.report_notify(r);
                self.stage_heartbeat();
            }
            Phase::Draining { abandoned: false, .. } => {
                self.log.info(
                    "second stop signal: stopping running tasks now",
                    &[("ACTIVE", &self.flight.active)],
                );
                self.abandon_running(now);
            }
            Phase::Draining { .. } => {}
        }
    }

    /// While stopping: tasks waiting for a retry go back to the queue with their state.
    fn requeue_waiting(&mut self) {
        for (_, w) in std::mem::take(&mut self.flight.waiting) {
            self.flight.ids.remove(&w.task.id);
            if let Err(e) = self.spool.requeue(&w.claim) {
                self.log.error(
                    "cannot re-queue a task waiting for a retry; it is recovered at the next start",
                    &[("TASK_ID", &w.task.id), ("ERROR", &e)],
                );
            }
        }
    }

    /// The last heartbeat, `stopped`, written before the process exits.
    pub(super) fn stopped(&mut self) {
        // No agent runs any more: nothing it started may stay.
        self.agents.shutdown();
        self.contain_warnings();
        self.commit_now();
        if self.spool.has_pending() {
            self.log.error("some outcomes could not be written; their tasks stay in flight and are recovered at the next start", &[]);
        }
        self.stage_heartbeat_as(WorkerState::Stopped);
        self.commit_now();
        self.close_endpoint();
        let (stopped, later) = (WorkerState::Stopped, Instant::now() + Duration::from_secs(1));
        let line = stopped.status_line(&Figures::default());
        let r = self.notifier.status_as(stopped.as_str(), &line, later).map(|_| ());
        self.report_notify(r);
        self.log.info(
            "stopped",
            &[("COMPLETED", &self.report.stats.completed), ("FAILED", &self.report.stats.failed)],
        );
    }
}
