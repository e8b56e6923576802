//! Cancelling a task (`watcherctl cancel`): the request comes through the spool's intake like
//! an arrival, never as a signal; the task ends with a result of its own, status `cancelled`,
//! neither retried nor dead-lettered. A queued task is taken out of the queue by its id; one
//! waiting for a retry is finished at once; a running agent is stopped as a timeout stops it
//! (SIGTERM to its process group, SIGKILL after KILL_GRACE) and its task finished when it is
//! reaped, with what the run printed.
//!
//! A request is dropped once its task's final outcome is durable, whatever that outcome is (a
//! run that ended on its own before the request came keeps its result). A request for a task
//! this worker does not hold is kept: the task may be one another host holds, or one not
//! claimed yet; it is acted on when the task is claimed here, and is moot once a result exists. One gone from the spool (another host acted on
//! it) is forgotten when the spool says so, or at the next listing.

use std::time::Instant;

use super::outcome::{Attempt, Final};
use super::{Daemon, Finishing};
use crate::format::records::TaskResult;
use crate::format::task::Task;
use crate::metrics::{End, Recorded};
use crate::runner::supervise::Why;
use crate::spool::{CancelRequest, Claim, Op};

impl Daemon {
    /// A request to cancel a task arrived (or was found again by a scan).
    pub(super) fn on_cancel(&mut self, request: CancelRequest) {
        let id = request.task_id.clone();
        self.flight.cancels.insert(id.clone(), request.clone());
        // An agent that has exited already ends as it ended, not as cancelled.
        self.reap();
        if self.stop_running(&id, &request) || self.cancel_waiting(&id, &request) {
            return;
        }
        if self.flight.ids.contains(&id) {
            // Its outcome is being written: the request is moot once it is durable.
            return;
        }
        match self.spool.withdraw(&id) {
            Ok(Some(claim)) => self.cancel_queued(claim, &request),
            Ok(None) if self.spool.result_exists(&id) => self.cancel_moot(&id),
            Ok(None) => {
                self.log.debug("cancel request for a task not held here (yet); kept", &[("TASK_ID", &id)])
            }
            Err(e) => self
                .io_error("cannot take a cancelled task out of the queue (will retry at the next scan)", &e),
        }
    }

    /// Stops the running agent of task `id`, if one runs; it ends as cancelled when reaped.
    fn stop_running(&mut self, id: &str, request: &CancelRequest) -> bool {
        let grace = self.cfg.tuning.kill_grace;
        let found = self.flight.slots.iter().position(|r| r.as_ref().is_some_and(|r| r.task.id == id));
        let Some(slot) = found else { return false };
        let Some(run) = self.flight.slots[slot].as_mut() else { return false };
        run.cancel = Some(request.clone());
        if let Some(signal) = run.stop.terminate(Why::Cancel, Instant::now(), grace) {
            self.log.info(
                "task cancelled while running; sending SIGTERM to its process group",
                &[("TASK_ID", &id), ("BY", &request.by), ("KILL_GRACE_MS", &grace.as_millis())],
            );
            self.agents.signal(slot, signal);
        }
        true
    }

    /// Finishes task `id` if it waits for a retry (or for the worker to be let go).
    fn cancel_waiting(&mut self, id: &str, request: &CancelRequest) -> bool {
        let key = self.flight.waiting.iter().find(|(_, w)| w.task.id == id).map(|(k, _)| *k);
        let Some(w) = key.and_then(|k| self.flight.waiting.remove(&k)) else { return false };
        self.finish_cancelled(w.claim, w.task, request);
        true
    }

    /// A queued task taken out of the queue for its cancellation.
    fn cancel_queued(&mut self, claim: Claim, request: &CancelRequest) {
        self.dequeue(&claim.source);
        self.queue.settling.forget(&claim.source);
        let loaded = self.spool.load(&claim, self.cfg.tuning.max_task_bytes, &self.cfg.worker);
        let task = match loaded {
            Ok(l) => l.task,
            // Not a valid task: cancelled all the same, under the id it was asked by.
            Err(r) => {
                let mut doc = r.doc.and_then(|d| d.as_object().cloned()).unwrap_or_default();
                doc.remove(crate::format::task::STATE_KEY);
                bare_task(&request.task_id, doc)
            }
        };
        self.flight.ids.insert(task.id.clone());
        self.finish_cancelled(claim, task, request);
    }

    /// A claimed task whose id has a request pending: cancelled instead of run.
    pub(super) fn cancel_on_claim(&mut self, claim: Claim, task: Task) -> Option<(Claim, Task)> {
        let Some(request) = self.flight.cancels.get(&task.id).cloned() else { return Some((claim, task)) };
        self.finish_cancelled(claim, task, &request);
        None
    }

    /// An agent run stopped by a cancellation has been reaped.
    pub(super) fn cancelled_run(&mut self, mut a: Attempt, request: &CancelRequest) {
        self.holds.breaker.abandoned();
        Self::record_run(&mut a, "cancelled");
        let result = self.result(&a, None);
        let run = Self::run_of(&a);
        self.stage_cancelled(a.claim, &a.task, result, request, run, Some(a.number));
    }

    /// Finishes a task held but not running as cancelled.
    fn finish_cancelled(&mut self, claim: Claim, task: Task, request: &CancelRequest) {
        let result = TaskResult {
            attempts: task.state.attempts,
            started_at: task.state.first_started_at.clone(),
            metadata: task.metadata(),
            runs: task.state.runs.clone(),
            ..self.result_of(&task.id)
        };
        self.stage_cancelled(claim, &task, result, request, None, None);
    }

    fn stage_cancelled(
        &mut self,
        claim: Claim,
        task: &Task,
        result: TaskResult,
        request: &CancelRequest,
        run: Option<crate::metrics::Run>,
        attempt: Option<u32>,
    ) {
        let by = if request.by.is_empty() { String::new() } else { format!(" by {}", request.by) };
        let result = result.cancelled(format!("cancelled{by} (watcherctl cancel)"));
        let mut fields = vec![("TASK_ID", task.id.clone()), ("BY", request.by.clone())];
        if let Some(n) = attempt {
            fields.push(("ATTEMPT", n.to_string()));
        }
        self.flight.finishing.insert(
            claim.key.clone(),
            Finishing {
                release: Some(task.id.clone()),
                status: Final::Cancelled,
                message: "task cancelled".into(),
                fields,
                recorded: Recorded { end: End::Cancelled, run },
            },
        );
        self.spool.stage(Op::Complete { claim, result });
    }

    /// Task `id` has a final outcome, durable: a request to cancel it is done with.
    pub(super) fn cancel_moot(&mut self, id: &str) {
        let Some(request) = self.flight.cancels.remove(id) else { return };
        if let Err(e) = self.spool.drop_request(&request) {
            self.log.warn("cannot remove a request to cancel a task", &[("TASK_ID", &id), ("ERROR", &e)]);
        }
    }
}

/// Task `id` whose file could not be read as a task: only what it held as an object.
fn bare_task(id: &str, doc: serde_json::Map<String, serde_json::Value>) -> Task {
    Task {
        id: id.to_string(),
        description: String::new(),
        timeout: None,
        max_retries: None,
        max_turns: None,
        max_budget_usd: None,
        doc,
        state: Default::default(),
        charging_since: None,
    }
}
