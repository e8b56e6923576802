//! The journal MESSAGE_IDs of worker-watcher's key events: fixed 128-bit ids, written as
//! journald expects them (32 lowercase hex digits, no dashes).
//!
//! An id names a kind of event, not one occurrence: `journalctl MESSAGE_ID=…` finds every
//! task that completed, on every worker. They are part of the interface (alerts, dashboards
//! and the journal catalog key on them): never change one; add a new id for a new event.
//! Each was drawn at random once (as `systemd-id128 new` does).

/// A task's agent succeeded and its result was written (`status: completed`).
pub const TASK_COMPLETED: &str = "e111f1c9c6c142d1a1dc25cbbc27f439";
/// A task failed for good: its retries were spent (or it was found in flight too often,
/// REASON=reclaim_limit); a failed result and a dead letter were written.
pub const TASK_FAILED: &str = "cc90c0d434a64a3797899cad280c0d1d";
/// A file in the queue was not a valid task (REASON=invalid); it was dead-lettered.
pub const TASK_INVALID: &str = "aa32f276c65845a68c505d641147f832";
/// An attempt failed and the task will run again after RETRY_IN_MS.
pub const RETRY_SCHEDULED: &str = "25b09d64192548cca285add004ce95de";
/// A task was cancelled (`watcherctl cancel`): a running agent was stopped as a timeout
/// stops it; its result, with status `cancelled`, was written. Neither retried nor
/// dead-lettered.
pub const TASK_CANCELLED: &str = "3193f444520a46b19005c4c433eee8cf";
/// A task left in flight by a daemon that died was found at start-up and re-queued.
pub const TASK_RECLAIMED: &str = "fd9233c353ff45e6a0319b3ae953d899";
/// The circuit breaker opened: no new task starts until it half-opens.
pub const BREAKER_OPENED: &str = "1a2bbda5ce2c4d9ca08ccc41b155914e";
/// The circuit breaker half-opened: one trial task may run.
pub const BREAKER_HALF_OPEN: &str = "a58d2c4d068e4027b754c0d7840646a4";
/// The circuit breaker closed: tasks start again.
pub const BREAKER_CLOSED: &str = "4a0f55bc82bc4875b31a82c1008e1fdb";

/// The agent's service became unavailable (CAUSE=credential, network or service): the breaker
/// holds the queue, no task is charged, one trial runs per breaker timeout. Logged once at
/// the start of the outage (and again if its cause changes), with what to do.
pub const OUTAGE_STARTED: &str = "7c3e9a51d2b84f06a1e5c2d9b8f04e17";
/// The outage is over (a run reached the agent's service): held tasks start. DURATION_S,
/// UNCHARGED_RUNS.
pub const OUTAGE_ENDED: &str = "c09870e5d51b41b4bc973fc3e4714453";
/// The worker paused: a usage or rate limit (until its reset) or its spend cap
/// (REASON=rate_limited or budget_exhausted, PAUSED_UNTIL).
pub const WORKER_PAUSED: &str = "3f6d2b8e91c04a7d8e5b1f0c6a9d2e44";
/// The pause is over: tasks start again.
pub const WORKER_RESUMED: &str = "b84e0c2f7a19463d9c5e8f1a2b3d4c65";
/// orchestrator-listener: a worker became unhealthy (stale or missing heartbeat, `stopped`,
/// breaker open); `worker_unhealthy` was written. WHY= says which.
pub const WORKER_UNHEALTHY: &str = "b6bbe6e1819b45fd8fd5dbd2f39ac77d";
/// orchestrator-listener: an unhealthy worker is healthy again; `worker_recovered` was written.
pub const WORKER_RECOVERED: &str = "939de7f86b2a46b7a95cde01ee0fbe0e";
/// orchestrator-listener: every task of a batch has its result; `batch_completed` was written.
pub const BATCH_COMPLETED: &str = "43d27ba351a548359f7148b212a30cce";
/// orchestrator-listener: ORCHESTRATOR_NOTIFY_COMMAND failed for an event (non-zero exit,
/// signal, time-out, or it could not start). The event file was written all the same.
pub const NOTIFY_FAILED: &str = "9a11b60bcc944e0aa5105193549be2e1";
/// orchestrator-listener: a file in a result folder is not a result it can read; it is
/// counted (`watcher_listener_results_total{status="unreadable"}`) and announced to no one.
pub const RESULT_UNREADABLE: &str = "ee940fc821b44e2bb1517ce381b18b4d";
/// orchestrator-listener: an event file (or the listener's state) cannot be written; no
/// more results are taken until it can (nothing is lost, events are late).
pub const EVENTS_BLOCKED: &str = "c247d16ea4e94baebdb5980b202f81ec";
/// Both daemons: a folder of the spool they write to was missing (removed under them) and was
/// made again (FOLDER=); what was to be written there is written.
pub const FOLDER_RECREATED: &str = "5f1b6cb245ab49819a59fabdf392adf0";

/// Every id with a short name, for the journal catalog and the tests.
pub const ALL: &[(&str, &str)] = &[
    ("task completed", TASK_COMPLETED),
    ("task failed", TASK_FAILED),
    ("task invalid", TASK_INVALID),
    ("retry scheduled", RETRY_SCHEDULED),
    ("task reclaimed", TASK_RECLAIMED),
    ("task cancelled", TASK_CANCELLED),
    ("breaker opened", BREAKER_OPENED),
    ("breaker half-open", BREAKER_HALF_OPEN),
    ("breaker closed", BREAKER_CLOSED),
    ("agent outage", OUTAGE_STARTED),
    ("agent outage over", OUTAGE_ENDED),
    ("worker paused", WORKER_PAUSED),
    ("worker resumed", WORKER_RESUMED),
    ("worker unhealthy", WORKER_UNHEALTHY),
    ("worker recovered", WORKER_RECOVERED),
    ("batch completed", BATCH_COMPLETED),
    ("notify command failed", NOTIFY_FAILED),
    ("result unreadable", RESULT_UNREADABLE),
    ("events blocked", EVENTS_BLOCKED),
    ("folder re-created", FOLDER_RECREATED),
];

/// The ids orchestrator-listener logs (the others are the worker's): its page lists these.
pub const LISTENER: &[&str] = &[
    WORKER_UNHEALTHY,
    WORKER_RECOVERED,
    BATCH_COMPLETED,
    NOTIFY_FAILED,
    RESULT_UNREADABLE,
    EVENTS_BLOCKED,
    FOLDER_RECREATED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_journal_ids() {
        for (name, id) in ALL {
            assert_eq!(id.len(), 32, "{name}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{name}: {id}");
        }
        let mut ids: Vec<&str> = ALL.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len(), "an id is used twice");
    }
}
