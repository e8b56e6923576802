//! orchestrator-listener with real workers: events for every outcome, batches, health
//! announcements after a kill -9 and a restart, the aggregated scrape target, restarts of
//! the listener itself, the notify command, and its exit statuses.

mod batches; // one batch_completed when all are in; never twice
mod blocked; // events that cannot be written hold results back, never lose them
mod events; // every result of every worker becomes exactly one event, written whole
mod health; // a killed worker announced unhealthy once, recovered once; stopped, breaker open
mod notify; // ORCHESTRATOR_NOTIFY_COMMAND: once per event; one that fails or hangs holds nothing up
mod restart; // the listener restarted or killed: same counts, no event twice, nothing missed
mod scrape; // the host's one scrape target: every worker's families plus the listener's own
mod settings; // exit statuses: a bad setting, a second listener, a damaged state file

use crate::support::scrape::Target;
use crate::support::util::*;

/// Settings of the workers in these tests: quick heartbeats, no retries, no metrics socket.
pub const FAST_WORKER: &[(&str, &str)] =
    &[("HEARTBEAT_INTERVAL", "0.2"), ("MAX_RETRIES", "0"), ("CIRCUIT_BREAKER_THRESHOLD", "100")];

/// Starts a listener on `root` serving metrics on a unix socket in it; waits for READY=1.
/// Heartbeats are judged stale after an hour: a loaded machine may delay a worker's
/// heartbeat, and only the health tests ([`start_judging`]) are about that.
pub fn start(root: &Root, env: &[(&str, &str)]) -> (Worker, Target) {
    let mut all = vec![("HEARTBEAT_STALE_AFTER", "3600")];
    all.extend_from_slice(env);
    start_judging(root, &all)
}

/// [`start`] with the stale limit of the heartbeats themselves (three intervals).
pub fn start_judging(root: &Root, env: &[(&str, &str)]) -> (Worker, Target) {
    let sock = root.path().join("listener.metrics.sock");
    let listen = sock.display().to_string();
    let mut all = vec![("ENABLE_METRICS", "true"), ("METRICS_LISTEN", listen.as_str())];
    all.extend_from_slice(env);
    let l = Worker::spawn_command(root, "listener", listener_command(root, &all));
    l.wait_notify("READY=1");
    (l, Target::Unix(sock))
}

/// Starts `name` with [`FAST_WORKER`] settings.
pub fn worker(root: &Root, name: &str) -> Worker {
    Worker::start(root, name, FAST_WORKER)
}

/// The ids of `events`, for comparing sets of events.
pub fn ids(events: &[serde_json::Value]) -> Vec<String> {
    events.iter().map(|e| e["id"].as_str().unwrap_or_default().to_string()).collect()
}
