//! What one call of a turn's batch is for, the call it makes, and what its reply means.
//!
//! The loop's ops map to scripts: `Complete` → `complete`, `DeadLetter` → `dead_letter`,
//! `SaveState` → `retry_later` (the task waits in the delayed set until its time on the
//! engine's clock, and any host takes it then), `Requeue` → `requeue`, `Heartbeat` →
//! `heartbeat` (with the lease renewal, the promotion of due retries and the queue's depth
//! in the same batch), `Ledger` → the host's ledger key. A receipt is the `claim` script's
//! own record: nothing to send.

use std::time::Duration;

use crate::engine::redis::ops::{Call, Held, Queue, Status};
use crate::format::records::{Heartbeat, CANCELLED, COMPLETED};
use crate::format::task::Task;
use crate::spool::{EntryId, Op, OpKind};
use crate::sys::clock;

/// One call's purpose.
// A batch holds a few; boxing the loop's ops would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Work {
    /// A loop op: its outcome goes back to the loop.
    Op(Op),
    /// [`crate::spool::Spool::requeue`]: back to the queue's tail as it is.
    Requeue(Held),
    /// [`crate::spool::Spool::discard`]: dropped for good.
    Discard(Held),
    /// New entries for this many free slots.
    Claim(usize),
    /// Dead hosts' entries for this many free slots.
    Reclaim(usize),
    /// This consumer's own pending entries after a reconnect: claims whose reply was lost.
    Recover,
    Renew,
    Promote,
    Depth,
    /// Every host's claims of the worker pause this long (a usage or rate limit hit here).
    Pause(Duration),
    /// The worker's requests to cancel a task, read.
    Cancels,
    /// A request to cancel task `id` dropped (acted on, or moot).
    DropRequest(String),
    /// The receipt of a run's start kept with its held task (for `watcherctl tasks`).
    Receipt(Held, Vec<u8>),
}

/// How many due retries one call promotes at most.
const PROMOTE_LIMIT: usize = 500;

/// The engine's settings a call needs.
pub(super) struct Ctx<'a> {
    pub(super) queue: &'a Queue,
    pub(super) result_ttl: Duration,
    pub(super) lease: Duration,
    /// The reclaim scan's cursor.
    pub(super) cursor: &'a str,
    /// The entries a renewal covers.
    pub(super) renew: &'a [String],
    /// This host's ledger key.
    pub(super) ledger: &'a str,
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn held(claim: &crate::spool::Claim) -> Held {
    super::tasks::held(claim)
}

/// A task's state as the engine keeps it: its `_watcher` object, without `retry_at` (its due
/// time is the delayed set's score, on the engine's clock), with the time charged so far
/// plus `waiting` (the wait is charged, as a worker holding it would charge it).
pub(super) fn state(task: &Task, waiting: Duration) -> Vec<u8> {
    let mut state = task.state.clone();
    state.charged_seconds = (task.charged() + waiting).as_secs_f64();
    state.retry_at = None;
    json(&state)
}

/// The wait until a state's `retry_at`, on this host's clock (the same clock that set it).
fn wait(task: &Task) -> Duration {
    let secs = task.state.retry_at.map_or(0.0, |at| at - clock::now_f64());
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
}

impl Work {
    /// The call, or `None` for what needs none (a receipt).
    pub(super) fn call(&self, c: &Ctx) -> Option<Call> {
        let q = c.queue;
        Some(match self {
            Work::Op(op) => match op {
                Op::Complete { claim, result } => {
                    let status = match result.status.as_str() {
                        COMPLETED => Status::Completed,
                        CANCELLED => Status::Cancelled,
                        _ => Status::Failed,
                    };
                    q.complete(&held(claim), &json(result), status, c.result_ttl)
                }
                Op::DeadLetter { claim, record, result, .. } => {
                    let result = result.as_ref().map(json);
                    q.dead_letter(&held(claim), &json(record), None, result.as_deref(), c.result_ttl)
                }
                Op::SaveState { claim, task, .. } => {
                    let wait = wait(task);
                    q.retry_later(&held(claim), &state(task, wait), wait)
                }
                Op::Requeue { claim, task, .. } => {
                    q.requeue(&held(claim), Some(&state(task, Duration::ZERO)))
                }
                Op::Heartbeat(hb) => {
                    q.heartbeat_watching(&json(hb), heartbeat_ttl(hb, c.lease), Some(c.lease))
                }
                Op::Ledger(bytes) => Call::command("SET", vec![c.ledger.to_owned()]).arg(bytes),
                Op::Receipt(_) => return None,
            },
            Work::Requeue(h) => q.requeue(h, None),
            Work::Discard(h) => q.discard(h),
            Work::Claim(n) => q.claim(*n),
            Work::Reclaim(n) => q.reclaim(c.lease, *n, c.cursor),
            Work::Recover => q.recover("0", RECOVER_COUNT, false),
            Work::Renew => q.renew(c.renew.iter().map(String::as_str)),
            Work::Promote => q.promote(PROMOTE_LIMIT),
            Work::Depth => q.depth(),
            Work::Pause(d) => q.pause(*d, "rate_limited"),
            Work::Cancels => Call::command("HGETALL", vec![q.keys().cancels()]),
            Work::DropRequest(id) => Call::command("HDEL", vec![q.keys().cancels()]).arg(id),
            Work::Receipt(held, json) => q.receipt(held, json),
        })
    }

    /// The entry it ends, if it ends one (not renewed while it is on its way).
    pub(super) fn ending(&self) -> Option<EntryId> {
        match self {
            Work::Op(op) if ends(op) => kind_of(op).1,
            Work::Requeue(h) | Work::Discard(h) => Some(EntryId::from(h.entry.as_str())),
            _ => None,
        }
    }

    /// Whether losing it in a failover loses a task's progress: such calls wait for a replica.
    pub(super) fn critical(&self) -> bool {
        match self {
            Work::Op(op) => !matches!(op, Op::Heartbeat(_) | Op::Ledger(_) | Op::Receipt(_)),
            Work::Requeue(_) | Work::Discard(_) => true,
            _ => false,
        }
    }
}

/// Entries read at most per recovery call.
pub(super) const RECOVER_COUNT: usize = 1000;

/// How long a host's heartbeat stays in the engine without being written again: a day, so
/// that a host that died is still listed (stale) by `watcherctl status` and the listener.
fn heartbeat_ttl(_hb: &Heartbeat, lease: Duration) -> Duration {
    Duration::from_secs(86_400).max(lease)
}

/// How long a heartbeat says the worker is paused for a usage or rate limit: the other hosts
/// pause as long (a spend cap is this host's own).
pub(super) fn rate_limit_pause(hb: &Heartbeat) -> Option<Duration> {
    if hb.paused_reason.as_deref() != Some(crate::worker::state::WorkerState::RateLimited.as_str()) {
        return None;
    }
    let left = hb.paused_until? - clock::now_f64();
    Duration::try_from_secs_f64(left).ok().filter(|d| !d.is_zero())
}

/// The kind and claim key of an op, for its outcome.
pub(super) fn kind_of(op: &Op) -> (OpKind, Option<EntryId>) {
    match op {
        Op::Complete { claim, .. } => (OpKind::Complete, Some(claim.key.clone())),
        Op::DeadLetter { claim, .. } => (OpKind::DeadLetter, Some(claim.key.clone())),
        Op::SaveState { claim, .. } => (OpKind::SaveState, Some(claim.key.clone())),
        Op::Requeue { claim, .. } => (OpKind::Requeue, Some(claim.key.clone())),
        Op::Receipt(_) => (OpKind::Receipt, None),
        Op::Heartbeat(_) => (OpKind::Heartbeat, None),
        Op::Ledger(_) => (OpKind::Ledger, None),
    }
}

/// Whether an op ends its claim once it is written (the entry is acknowledged).
pub(super) fn ends(op: &Op) -> bool {
    matches!(op, Op::Complete { .. } | Op::DeadLetter { .. } | Op::SaveState { .. } | Op::Requeue { .. })
}

/// Whether a failed op is tried again (outcomes) or dropped (a heartbeat: the next one
/// comes).
pub(super) fn kept(op: &Op) -> bool {
    ends(op) || matches!(op, Op::Ledger(_))
}

/// The requests of a worker's cancel hash (`HGETALL`: id, JSON, …); one that cannot be read
/// still stands for its id.
pub(super) fn cancel_requests(v: &redis::Value) -> Vec<crate::spool::CancelRequest> {
    let pairs = crate::spool::redis::values::items(v).unwrap_or_default();
    pairs
        .chunks(2)
        .filter_map(|kv| {
            let id = crate::spool::redis::values::text(kv.first()?)?;
            let json = crate::spool::redis::values::bytes(kv.get(1)?).unwrap_or_default();
            let by = serde_json::from_slice::<serde_json::Value>(&json)
                .ok()
                .and_then(|j| j.get("by").and_then(|b| b.as_str()).map(str::to_owned))
                .unwrap_or_default();
            Some(crate::spool::CancelRequest { key: EntryId::from(id.as_str()), task_id: id, by })
        })
        .collect()
}
