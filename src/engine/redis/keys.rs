//! The key schema: one owner for every key name, so scripts never build keys of their own
//! beyond the per-task prefixes handed to them here.
//!
//! Every key of one worker `W` carries the hash tag `{W}`, so they share a hash slot; the
//! fleet-wide streams (`P:results`, `P:events`) and the worker set do not. A script that
//! writes both therefore cannot run on Redis Cluster. That is accepted: the engine is one
//! primary with replicas and Sentinel, never Cluster (docs/redis.md, "Why not Cluster"), and
//! every script carries `flags=no-cluster` so a Cluster refuses it at once.

use crate::format::task::is_valid_id;

/// The consumer group of every worker's task stream.
pub const GROUP: &str = "workers";
/// The listener's consumer group on `P:results`.
pub const LISTENER_GROUP: &str = "listener";
/// The orchestrator's consumer group on `P:events`.
pub const EVENTS_GROUP: &str = "orchestrator";

/// Whether `s` may be a SPOOL_PREFIX: 1-64 of `A-Z a-z 0-9 . _ -`. No `{`, `}` or `:`, so
/// a prefix can neither move the hash tag nor collide with another prefix's keys.
pub fn is_valid_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Whether `s` may be a consumer name (SPOOL_CONSUMER): a host name, 1-128 of
/// `A-Z a-z 0-9 . _ -`, starting with a letter or digit (the task id rule).
pub fn is_valid_consumer(s: &str) -> bool {
    is_valid_id(s)
}

/// The fleet-wide keys under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    prefix: String,
}

impl Fleet {
    /// `prefix` must pass [`is_valid_prefix`] (the settings check it).
    pub fn new(prefix: &str) -> Fleet {
        Fleet { prefix: prefix.to_owned() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Stream of final results: `P:results`, read by the listener's group.
    pub fn results(&self) -> String {
        format!("{}:results", self.prefix)
    }

    /// Stream of the listener's events for the orchestrator: `P:events`.
    pub fn events(&self) -> String {
        format!("{}:events", self.prefix)
    }

    /// The listener's lock: one listener serves a fleet.
    pub fn listener_lock(&self) -> String {
        format!("{}:listener:lock", self.prefix)
    }

    /// Set of the ids of the events written since the listener's last commit.
    pub fn events_written(&self) -> String {
        format!("{}:listener:written", self.prefix)
    }

    /// Stream of the workers' word that they wrote a heartbeat or made their queue (capped),
    /// which the listener follows: `P:heartbeats`.
    pub fn heartbeats(&self) -> String {
        format!("{}:heartbeats", self.prefix)
    }

    /// The listener's state (JSON), saved with each commit.
    pub fn listener_state(&self) -> String {
        format!("{}:listener:state", self.prefix)
    }

    /// Set of every worker that was ever enqueued to, or gave a heartbeat: `P:workers`.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// The keys of one worker; `worker` must pass [`is_valid_id`].
    pub fn worker(&self, worker: &str) -> Keys {
        Keys {
            fleet: self.clone(),
            worker: worker.to_owned(),
            base: format!("{}:{{{worker}}}:", self.prefix),
        }
    }
}

/// The keys of one worker `W` under prefix `P`, all in the hash slot of `{W}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    fleet: Fleet,
    worker: String,
    /// `P:{W}:`
    base: String,
}

impl Keys {
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn key(&self, what: &str) -> String {
        format!("{}{what}", self.base)
    }

    /// The task stream (group [`GROUP`]): one entry `id <task_id>` per queued task.
    pub fn queue(&self) -> String {
        self.key("q")
    }

    /// Prefix of the per-task hashes; `task(id)` is this plus the id.
    pub fn task_prefix(&self) -> String {
        self.key("task:")
    }

    /// The task's hash: `doc` (as submitted), `state` (the daemon's `_watcher` JSON), `phase`,
    /// `entry`, `owner`, `queued_at`, `claimed_at`, `due`, `reclaims`.
    pub fn task(&self, id: &str) -> String {
        format!("{}{id}", self.task_prefix())
    }

    /// Prefix of the result strings; `result(id)` is this plus the id.
    pub fn result_prefix(&self) -> String {
        self.key("result:")
    }

    /// The final result (JSON), kept for RESULT_TTL.
    pub fn result(&self, id: &str) -> String {
        format!("{}{id}", self.result_prefix())
    }

    /// Hash of in-flight receipts: task id -> `{"consumer","entry","claimed_at"}`.
    pub fn inflight(&self) -> String {
        self.key("inflight")
    }

    /// Sorted set of retries waiting: task id scored by its due time (server ms).
    pub fn delayed(&self) -> String {
        self.key("delayed")
    }

    /// Hash of dead letters: task id -> the dead-letter record (JSON).
    pub fn dlq(&self) -> String {
        self.key("dlq")
    }

    /// Sorted set of dead letters by the time (server ms) they died, to list them in order.
    pub fn dlq_index(&self) -> String {
        self.key("dlq:ix")
    }

    /// Hash of the originals kept beside dead letters (a task file imported with its
    /// letter): letter name -> bytes.
    pub fn originals(&self) -> String {
        self.key("dlq:orig")
    }

    /// Hash of the dead letters retried since (kept as the record of an earlier failure):
    /// `<name>.<ms>` -> record.
    pub fn retired_letters(&self) -> String {
        self.key("dlq:retired")
    }

    /// A result set aside by a later run of its task (`dlq retry`), with the time it was.
    pub fn retired_result(&self, id: &str, ms: u128) -> String {
        self.key(&format!("retired:{id}.{ms}"))
    }

    /// The task hash of a dead letter (moved there whole, history included), for `dlq retry`.
    pub fn dead(&self, id: &str) -> String {
        self.key(&format!("dead:{id}"))
    }

    /// Prefix of the hosts' heartbeats; `heartbeat(host)` is this plus the host.
    pub fn heartbeat_prefix(&self) -> String {
        self.key("hb:")
    }

    /// One host's heartbeat (JSON), expiring unless renewed.
    pub fn heartbeat(&self, consumer: &str) -> String {
        format!("{}{consumer}", self.heartbeat_prefix())
    }

    /// Sorted set of the hosts (consumers) of this worker, scored by their last heartbeat.
    pub fn hosts(&self) -> String {
        self.key("hosts")
    }

    /// The shared rate-limit pause: exists (with a TTL) while no host may claim.
    pub fn pause(&self) -> String {
        self.key("pause")
    }

    /// One host's own spend ledger (the worker loop's, opaque to the engine).
    pub fn ledger(&self, consumer: &str) -> String {
        self.key(&format!("ledger:{consumer}"))
    }

    /// Exists (with a TTL) after a silence of the whole fleet: no reclaim meanwhile.
    pub fn stall(&self) -> String {
        self.key("stall")
    }

    /// Hash of requests to cancel a task (`watcherctl cancel`): task id -> `{"task_id","by"}`.
    /// Kept until the worker drops it (the task's outcome durable, or the request moot).
    pub fn cancels(&self) -> String {
        self.key("cancel")
    }

    /// Stream that rings the worker's hosts when a cancel request is made (capped: the
    /// requests themselves are in [`Keys::cancels`]).
    pub fn cancel_bell(&self) -> String {
        self.key("cancel:bell")
    }

    /// The spend ledger shared by the worker's hosts: hash minute -> USD.
    pub fn spend(&self) -> String {
        self.key("spend")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_key_carries_the_worker_hash_tag() {
        let k = Fleet::new("ww").worker("marie");
        let all = [
            k.queue(),
            k.task("t-1"),
            k.result("t-1"),
            k.inflight(),
            k.delayed(),
            k.dlq(),
            k.dlq_index(),
            k.dead("t-1"),
            k.heartbeat("host-a"),
            k.hosts(),
            k.pause(),
            k.spend(),
            k.ledger("host-a"),
            k.originals(),
            k.retired_letters(),
            k.retired_result("t-1", 7),
            k.stall(),
            k.cancels(),
            k.cancel_bell(),
        ];
        for key in &all {
            assert!(key.starts_with("ww:{marie}:"), "{key}");
        }
        let mut unique = all.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len(), "two kinds of key share a name");
        assert_eq!(k.queue(), "ww:{marie}:q");
        assert_eq!(k.task("t-1"), format!("{}t-1", k.task_prefix()));
    }

    #[test]
    fn fleet_keys_are_outside_any_worker_slot() {
        let f = Fleet::new("ww");
        assert_eq!(
            (f.results(), f.events(), f.workers()),
            ("ww:results".into(), "ww:events".into(), "ww:workers".into())
        );
        assert!(!f.results().contains('{'));
    }

    #[test]
    fn prefixes_and_consumers_that_could_move_the_hash_tag_are_refused() {
        for ok in ["ww", "prod-1", "a.b_c"] {
            assert!(is_valid_prefix(ok), "{ok}");
        }
        for bad in ["", "w{w", "w}", "a:b", "a b", &"x".repeat(65)] {
            assert!(!is_valid_prefix(bad), "{bad}");
        }
        assert!(is_valid_consumer("host-7.example.org"));
        for bad in ["", "-x", "a/b", "h{x}", "a b"] {
            assert!(!is_valid_consumer(bad), "{bad}");
        }
    }
}
