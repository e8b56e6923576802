//! The agent's session across a task's runs ([`crate::agent::session`]): which id a run gets
//! and whether it resumes, each run recorded in the task's state (attempt, session, cost), and
//! what the loop does when the agent has lost a session (a fresh one at once) or already has
//! one it was asked to create (it is resumed at once); neither is charged to the task.

use std::time::{Instant, SystemTime};

use super::outcome::Attempt;
use super::Daemon;
use crate::agent::session;
use crate::format::task::{Run, Session, Task, RUNS_KEPT};
use crate::sys::clock;

/// How a run's session is passed: its id, and whether it resumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RunSession {
    pub(super) id: String,
    pub(super) resumed: bool,
}

impl Daemon {
    /// The session of the run of `task` about to start, set in its state; `None` when
    /// sessions are off (AGENT_SESSION_FLAG empty). A session an agent was started with is
    /// resumed, or replaced by a new one when AGENT_RESUME_FLAG is off.
    pub(super) fn session_of(&self, task: &mut Task, queued_at: SystemTime) -> Option<RunSession> {
        let p = &self.cfg.tuning.policy;
        p.session_flag.as_ref()?;
        let mut s = session::current(task.state.session.as_ref(), &self.cfg.worker, &task.id, queued_at);
        let resumed = s.started && p.resume_flag.is_some();
        if s.started && !resumed {
            s = Session { id: session::fresh_id(), started: false };
        }
        let id = s.id.clone();
        task.state.session = Some(s);
        Some(RunSession { id, resumed })
    }

    /// The argument words that pass a run's session to the agent.
    pub(super) fn session_args(&self, s: &RunSession) -> Option<[String; 2]> {
        let p = &self.cfg.tuning.policy;
        let flag = if s.resumed { p.resume_flag.as_ref() } else { p.session_flag.as_ref() }?;
        Some([flag.clone(), s.id.clone()])
    }

    /// A task found in flight at start-up was running: its agent may have created the session
    /// (if not, the next run falls back to a fresh one), so the next run resumes it.
    pub(super) fn session_reclaimed(&self, task: &mut Task, queued_at: SystemTime) {
        if self.cfg.tuning.policy.session_flag.is_none() {
            return;
        }
        let mut s = session::current(task.state.session.as_ref(), &self.cfg.worker, &task.id, queued_at);
        s.started = true;
        task.state.session = Some(s);
    }

    /// Adds the run that just ended to its task's state (the oldest dropped past RUNS_KEPT).
    pub(super) fn record_run(a: &mut Attempt, outcome: &str) {
        let cost = a.output.as_ref().and_then(|o| o.report.as_ref()).and_then(|r| r.total_cost_usd);
        let runs = &mut a.task.state.runs;
        runs.push(Run {
            attempt: a.number,
            session_id: a.session.as_ref().map(|s| s.id.clone()),
            resumed: a.session.as_ref().is_some_and(|s| s.resumed),
            started_at: clock::rfc3339(a.started_wall),
            duration_seconds: a.duration.as_secs_f64(),
            outcome: outcome.to_string(),
            cost_usd: cost,
        });
        let excess = runs.len().saturating_sub(RUNS_KEPT);
        runs.drain(..excess);
    }

    /// What the agent said of the session of a run that did not succeed: it does not have the
    /// session it was asked to resume, or already has the one it was asked to create. Either
    /// way the task runs again at once with what fixes it, charged nothing. `false`: neither.
    pub(super) fn session_refused(&mut self, a: &mut Attempt) -> bool {
        let Some(s) = a.session.clone() else { return false };
        let stderr = a.captured.as_ref().map_or("", |c| c.stderr_tail.as_str());
        let object = a.output.as_ref().and_then(|o| o.result_object.as_ref());
        let (outcome, fixed, message) = if s.resumed && session::is_missing(stderr, object, &s.id) {
            let fresh = Session { id: session::fresh_id(), started: false };
            ("session_missing", fresh, "the agent has lost the task's session; starting a fresh one")
        } else if !s.resumed && session::is_in_use(stderr, &s.id) {
            let resume = Session { id: s.id.clone(), started: true };
            ("session_in_use", resume, "the agent already has the task's session; resuming it")
        } else {
            return false;
        };
        Self::record_run(a, outcome);
        self.holds.breaker.abandoned();
        self.report.metrics.session_run(if s.resumed { "missing" } else { "in_use" });
        self.log.info(
            message,
            &[
                ("TASK_ID", &a.task.id),
                ("ATTEMPT", &a.number),
                ("SESSION_ID", &s.id),
                ("NEW_SESSION_ID", &fixed.id),
            ],
        );
        a.task.state.session = Some(fixed);
        true
    }

    /// Runs a task whose session was refused again at once (the scheduler starts it as soon
    /// as the worker may start a task).
    pub(super) fn run_again(&mut self, a: Attempt) {
        self.wait_until(a.claim, a.task, a.queued_at, Instant::now());
    }
}
