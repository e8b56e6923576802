//! The engine's operations: each builds one script call ([`Call`]) from typed arguments, and
//! reads the script's reply back into a typed [`Reply`]. Calls are plain data, so the I/O
//! thread can pipeline a batch of them in one round trip.

use std::time::Duration;

use redis::Value;

use super::error::EngineError;
use super::keys::{Fleet, Keys, GROUP};
use super::reply::{self, Delivered, DlqRefusal, Lease, Reply};
use super::scripts::{self, Lua};

/// Which script a call runs, to read its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Enqueue,
    Claim,
    Reclaim,
    Renew,
    Complete,
    DeadLetter,
    RetryLater,
    Requeue,
    Promote,
    DlqRetry,
    Heartbeat,
    Pause,
    Spend,
    Trim,
    ForgetConsumer,
    Discard,
    Depth,
    ListenerCommit,
    ListenerLock,
    EventsAdd,
    Heartbeats,
    Withdraw,
    Receipt,
    /// A plain command (a read, or a write no script guards): its reply as it is.
    Command,
}

/// What a call runs.
#[derive(Clone, Copy)]
enum Runs {
    Script(&'static Lua),
    Command(&'static str),
}

/// One call: EVALSHA of a script with its keys and arguments, or a plain command.
#[derive(Clone)]
pub struct Call {
    pub kind: Kind,
    runs: Runs,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Call {
    // Arguments carry task documents and results: only their count is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("kind", &self.kind)
            .field("keys", &self.keys)
            .field("args", &self.args.len())
            .finish()
    }
}

impl Call {
    fn new(kind: Kind, script: &'static Lua, keys: Vec<String>) -> Call {
        Call { kind, runs: Runs::Script(script), keys, args: Vec::new() }
    }

    /// A plain command `name key… arg…`, read back as [`Reply::Value`]. Only for what needs
    /// no check before its write (reads, a host's own keys).
    pub fn command(name: &'static str, keys: Vec<String>) -> Call {
        Call { kind: Kind::Command, runs: Runs::Command(name), keys, args: Vec::new() }
    }

    /// Adds an argument.
    pub fn arg(mut self, a: impl AsRef<[u8]>) -> Call {
        self.args.push(a.as_ref().to_vec());
        self
    }

    /// Adds a number as an argument.
    pub fn num(self, n: impl ToString) -> Call {
        self.arg(n.to_string())
    }

    /// The command to send: EVALSHA of the script (loaded by [`super::client::Engine`]), or
    /// the plain command.
    pub fn evalsha(&self) -> redis::Cmd {
        match self.runs {
            Runs::Script(s) => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(s.script.get_hash()).arg(self.keys.len()).arg(&self.keys).arg(&self.args);
                cmd
            }
            Runs::Command(name) => {
                let mut cmd = redis::cmd(name);
                cmd.arg(&self.keys).arg(&self.args);
                cmd
            }
        }
    }

    /// Reads this call's reply.
    pub fn read(&self, v: Value) -> Result<Reply, EngineError> {
        reply::read(self.kind, v)
    }
}

/// A task held by this host: its id and the stream entry it was delivered as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Held {
    pub id: String,
    pub entry: String,
}

impl From<&Delivered> for Held {
    fn from(d: &Delivered) -> Held {
        Held { id: d.id.clone(), entry: d.entry.clone() }
    }
}

/// The final status of a result, as the results stream carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The stall rule of a lease (HEARTBEAT, RECLAIM): a worker none of whose hosts wrote a
/// heartbeat for half a lease was silenced with them (not one host dead), and holds reclaims
/// for one lease. Milliseconds: (quiet, hold).
fn stall_rule(lease: Duration) -> (u128, u128) {
    (ms(lease / 2).max(1), ms(lease).max(1))
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// One worker's queue as one host (consumer) sees it.
#[derive(Clone, Debug)]
pub struct Queue {
    keys: Keys,
    consumer: String,
}

impl Queue {
    /// `consumer` must pass [`super::keys::is_valid_consumer`].
    pub fn new(keys: Keys, consumer: &str) -> Queue {
        Queue { keys, consumer: consumer.to_owned() }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Queues a task once (refused while its task or result exists). `memory_limit`: refuse
    /// above this percentage of maxmemory (0: only the server's own OOM).
    pub fn enqueue(&self, id: &str, doc: &[u8], state: Option<&[u8]>, memory_limit: u8) -> Call {
        let k = &self.keys;
        Call::new(
            Kind::Enqueue,
            &scripts::ENQUEUE,
            vec![k.task(id), k.result(id), k.queue(), k.fleet().workers()],
        )
        .arg(id)
        .arg(doc)
        .arg(state.unwrap_or_default())
        .arg(k.worker())
        .num(memory_limit)
    }

    fn delivery(&self, kind: Kind, script: &'static Lua) -> Call {
        let k = &self.keys;
        Call::new(kind, script, vec![k.queue(), k.inflight(), k.pause()]).arg(GROUP).arg(&self.consumer)
    }

    /// Takes up to `count` new entries: call it with the free slots only.
    pub fn claim(&self, count: usize) -> Call {
        let k = &self.keys;
        self.delivery(Kind::Claim, &scripts::CLAIM)
            .num(count.max(1))
            .arg(">")
            .arg(k.task_prefix())
            .arg(k.result_prefix())
            .arg("0")
    }

    /// Reads this consumer's own pending entries after `after` ("0" from the start): its
    /// leftovers after a restart (`bump`: count each as a reclaim) or claims whose reply was
    /// lost (no bump).
    pub fn recover(&self, after: &str, count: usize, bump: bool) -> Call {
        let k = &self.keys;
        self.delivery(Kind::Claim, &scripts::CLAIM)
            .num(count.max(1))
            .arg(after)
            .arg(k.task_prefix())
            .arg(k.result_prefix())
            .arg(if bump { "1" } else { "0" })
    }

    /// Takes over up to `count` entries no host renewed for `lease`, scanning the pending
    /// list from `cursor` ("0-0" first, then the cursor of the last reply).
    pub fn reclaim(&self, lease: Duration, count: usize, cursor: &str) -> Call {
        let k = &self.keys;
        let mut call = self.delivery(Kind::Reclaim, &scripts::RECLAIM);
        call.keys.extend([k.stall(), k.hosts()]);
        let (quiet, hold) = stall_rule(lease);
        call.num(ms(lease))
            .num(count.max(1))
            .arg(k.task_prefix())
            .arg(k.result_prefix())
            .arg(cursor)
            .num(quiet)
            .num(hold)
    }

    /// Renews the lease of the entries held, learning which were taken or are gone.
    pub fn renew<'a>(&self, entries: impl IntoIterator<Item = &'a str>) -> Call {
        let mut call =
            Call::new(Kind::Renew, &scripts::RENEW, vec![self.keys.queue()]).arg(GROUP).arg(&self.consumer);
        for e in entries {
            call = call.arg(e);
        }
        call
    }

    fn ending(&self, kind: Kind, script: &'static Lua, held: &Held, more: &[String]) -> Call {
        let k = &self.keys;
        let mut keys = vec![
            k.queue(),
            k.task(&held.id),
            k.result(&held.id),
            k.inflight(),
            k.delayed(),
            k.fleet().results(),
        ];
        keys.extend_from_slice(more);
        Call::new(kind, script, keys).arg(GROUP).arg(&held.id).arg(&held.entry)
    }

    /// The final result; the first one written for a task wins.
    pub fn complete(&self, held: &Held, result: &[u8], status: Status, ttl: Duration) -> Call {
        self.ending(Kind::Complete, &scripts::COMPLETE, held, &[])
            .arg(result)
            .num(ttl.as_secs())
            .arg(status.as_str())
            .arg(self.keys.worker())
    }

    /// A dead letter with its `record`, the task's final `state`, and a failed result.
    pub fn dead_letter(
        &self,
        held: &Held,
        record: &[u8],
        state: Option<&[u8]>,
        result: Option<&[u8]>,
        ttl: Duration,
    ) -> Call {
        let k = &self.keys;
        self.ending(
            Kind::DeadLetter,
            &scripts::DEAD_LETTER,
            held,
            &[k.dlq(), k.dlq_index(), k.dead(&held.id)],
        )
        .arg(record)
        .arg(state.unwrap_or_default())
        .arg(result.unwrap_or_default())
        .num(ttl.as_secs())
        .arg(k.worker())
    }

    /// A failed attempt waits `delay` (from the server's clock) with its new `state`.
    pub fn retry_later(&self, held: &Held, state: &[u8], delay: Duration) -> Call {
        let k = &self.keys;
        Call::new(
            Kind::RetryLater,
            &scripts::RETRY_LATER,
            vec![k.queue(), k.task(&held.id), k.inflight(), k.delayed()],
        )
        .arg(GROUP)
        .arg(&self.consumer)
        .arg(&held.id)
        .arg(&held.entry)
        .arg(state)
        .num(ms(delay))
    }

    /// A held task goes back to the queue's tail now.
    pub fn requeue(&self, held: &Held, state: Option<&[u8]>) -> Call {
        let k = &self.keys;
        Call::new(Kind::Requeue, &scripts::REQUEUE, vec![k.queue(), k.task(&held.id), k.inflight()])
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(&held.id)
            .arg(&held.entry)
            .arg(state.unwrap_or_default())
    }

    /// Moves up to `limit` retries that are due (server clock) back to the queue.
    pub fn promote(&self, limit: usize) -> Call {
        let k = &self.keys;
        Call::new(Kind::Promote, &scripts::PROMOTE, vec![k.delayed(), k.queue()])
            .arg(k.task_prefix())
            .num(limit.max(1))
    }

    /// `dlq retry`: the dead letter `id` runs again with `state`.
    pub fn dlq_retry(&self, id: &str, state: Option<&[u8]>) -> Call {
        let k = &self.keys;
        Call::new(
            Kind::DlqRetry,
            &scripts::DLQ_RETRY,
            vec![k.dead(id), k.task(id), k.result(id), k.queue(), k.dlq(), k.dlq_index()],
        )
        .arg(id)
        .arg(state.unwrap_or_default())
    }

    /// This host's heartbeat, kept `ttl`.
    pub fn heartbeat(&self, json: &[u8], ttl: Duration) -> Call {
        self.heartbeat_watching(json, ttl, None)
    }

    /// This host's heartbeat, kept `ttl`, with the stall rule of a `lease` (see the script:
    /// a silence of the fleet longer than half a lease holds reclaims for one lease).
    pub fn heartbeat_watching(&self, json: &[u8], ttl: Duration, lease: Option<Duration>) -> Call {
        let k = &self.keys;
        let (quiet, hold) = lease.map_or((0, 0), stall_rule);
        Call::new(
            Kind::Heartbeat,
            &scripts::HEARTBEAT,
            vec![
                k.heartbeat(&self.consumer),
                k.hosts(),
                k.fleet().workers(),
                k.fleet().heartbeats(),
                k.stall(),
            ],
        )
        .arg(&self.consumer)
        .arg(json)
        .num(ms(ttl).max(1))
        .arg(k.worker())
        .num(quiet)
        .num(hold)
    }

    /// Pauses every host's claims of this worker for `span`.
    pub fn pause(&self, span: Duration, why: &str) -> Call {
        Call::new(Kind::Pause, &scripts::PAUSE, vec![self.keys.pause()]).num(ms(span).max(1)).arg(why)
    }

    /// Adds `usd` to the shared ledger; the reply is the sum of the last `window_minutes`.
    pub fn spend(&self, usd: f64, window_minutes: u32) -> Call {
        let usd = if usd.is_finite() { usd } else { 0.0 };
        Call::new(Kind::Spend, &scripts::SPEND, vec![self.keys.spend()]).num(usd).num(window_minutes.max(1))
    }

    /// Drops a held entry for good (its task is finished elsewhere, or was never to run): the
    /// entry acknowledged and deleted, and the task with it when it is the task's entry.
    pub fn discard(&self, held: &Held) -> Call {
        let k = &self.keys;
        Call::new(Kind::Discard, &scripts::DISCARD, vec![k.queue(), k.task(&held.id), k.inflight()])
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(&held.id)
            .arg(&held.entry)
    }

    /// Takes task `id` out of the queue (or the delayed set) to cancel it, held by this
    /// consumer; a task held by a host is not taken.
    pub fn withdraw(&self, id: &str) -> Call {
        let k = &self.keys;
        Call::new(Kind::Withdraw, &scripts::WITHDRAW, vec![k.queue(), k.task(id), k.inflight(), k.delayed()])
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(id)
    }

    /// Keeps the receipt of a run's start in the task's hash, while `held` is its entry.
    pub fn receipt(&self, held: &Held, json: &[u8]) -> Call {
        Call::new(Kind::Receipt, &scripts::RECEIPT, vec![self.keys.task(&held.id)]).arg(&held.entry).arg(json)
    }

    /// What waits in the queue: entries, pending ones, retries waiting.
    pub fn depth(&self) -> Call {
        let k = &self.keys;
        Call::new(Kind::Depth, &scripts::DEPTH, vec![k.queue(), k.delayed()]).arg(GROUP)
    }

    /// Removes `consumer` from the group, only when it holds no entry.
    pub fn forget_consumer(&self, consumer: &str) -> Call {
        Call::new(Kind::ForgetConsumer, &scripts::FORGET_CONSUMER, vec![self.keys.queue()])
            .arg(GROUP)
            .arg(consumer)
    }
}

/// An event for the events stream: its id and its JSON.
pub struct EventOut<'a> {
    pub id: &'a str,
    pub json: &'a [u8],
}

impl Fleet {
    /// The listener's commit: `taken` acknowledged in its group, `state` saved, the events
    /// written since forgotten, the lock (held by `holder`) renewed for `lock`.
    pub fn listener_commit(&self, holder: &str, lock: Duration, state: &[u8], taken: &[String]) -> Call {
        let keys = vec![self.listener_lock(), self.listener_state(), self.results(), self.events_written()];
        let mut call = Call::new(Kind::ListenerCommit, &scripts::LISTENER_COMMIT, keys)
            .arg(holder)
            .num(ms(lock))
            .arg(state)
            .arg(super::keys::LISTENER_GROUP);
        for t in taken {
            call = call.arg(t);
        }
        call
    }

    /// The listener's events, each added once (see the script).
    pub fn events_add(&self, events: &[EventOut]) -> Call {
        let mut call =
            Call::new(Kind::EventsAdd, &scripts::EVENTS_ADD, vec![self.events(), self.events_written()]);
        for e in events {
            call = call.arg(e.id).arg(e.json);
        }
        call
    }

    /// Takes or renews the listener's lock for `holder`.
    pub fn listener_lock_call(&self, holder: &str, lock: Duration) -> Call {
        Call::new(Kind::ListenerLock, &scripts::LISTENER_LOCK, vec![self.listener_lock()])
            .arg(holder)
            .num(ms(lock))
    }

    /// Every host's heartbeat of each of `workers`, the freshest first.
    pub fn heartbeats_by_host(&self, workers: &[String]) -> Call {
        let mut call = Call::new(Kind::Heartbeats, &scripts::HEARTBEATS, vec![]);
        for w in workers {
            let k = self.worker(w);
            call = call.arg(k.hosts()).arg(k.heartbeat_prefix());
        }
        call
    }

    /// Trims the results or events stream below every group's cursor, keeping `keep`.
    pub fn trim(&self, stream: &str, keep: Duration) -> Call {
        Call::new(Kind::Trim, &scripts::TRIM, vec![stream.to_owned()]).num(ms(keep))
    }
}

/// Replies that only one kind of call gives, unpacked for callers and tests.
impl Reply {
    pub fn delivered(self) -> Result<Vec<Delivered>, Reply> {
        match self {
            Reply::Claimed { delivered, .. } => Ok(delivered),
            other => Err(other),
        }
    }

    pub fn leases(self) -> Result<Vec<Lease>, Reply> {
        match self {
            Reply::Leases(l) => Ok(l),
            other => Err(other),
        }
    }

    pub fn dlq_refusal(&self) -> Option<DlqRefusal> {
        match self {
            Reply::DlqRefused(r) => Some(*r),
            _ => None,
        }
    }
}
