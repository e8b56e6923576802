//! The spool on a Redis or Valkey engine (`SPOOL=redis://…`): the three programs' backends
//! over the engine layer of [`crate::engine::redis`] (keys, one script per change of state,
//! the I/O thread, the lease rules). docs/redis.md is the reference.
//!
//! - [`worker::RedisSpool`]: the worker's [`super::Spool`]; it claims by itself, off the
//!   loop (a blocked `XREAD` wakes it for arrivals, one pipelined batch a turn), renews its
//!   leases at each heartbeat, reclaims dead hosts' entries, and keeps retries on the
//!   engine's clock;
//! - [`listener::RedisListener`]: the listener's [`super::listener::ListenerSpool`] on the
//!   results stream and its consumer group;
//! - [`control::RedisControl`]: watcherctl's [`super::control::ControlSpool`].
//!
//! Every connection is checked before it is used: an engine that could lose or evict tasks
//! (check.rs) is refused, with one line naming the setting.

pub(crate) mod control;
mod link;
pub(crate) mod listener;
pub(crate) mod values;
mod wakeup;
pub(crate) mod worker;

use std::sync::{Arc, Mutex};

use crate::engine::redis::check::{self, Verdict};
use crate::engine::redis::client::Engine;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::io::Connector;
use crate::engine::redis::keys::Keys;
use crate::engine::redis::settings::{Address, Settings};

/// Enqueues are refused above this share of maxmemory (percent), so that work admitted can
/// still finish below it (docs/redis.md, "Memory full").
pub(crate) const ENQUEUE_MEMORY_LIMIT: u8 = 90;

/// The fields of an entry of the events stream: the event's id, and its JSON.
pub(crate) const EVENT_ID: &str = "id";
pub(crate) const EVENT_JSON: &str = "event";
/// The fields of an entry of the results stream (written by the scripts that end a task).
pub(crate) const RESULT_WORKER: &str = "worker";
pub(crate) const RESULT_ID: &str = "id";

/// Connects and checks the engine: `Refused` when it is unsafe (the first refusal's line).
pub(crate) fn connect(settings: &Settings) -> Result<(Engine, Verdict), EngineError> {
    let mut engine = Engine::connect(&settings.target, settings.password.as_deref(), settings.timeout)?;
    let verdict = check::check(&mut engine)?;
    if let Some(first) = verdict.refusals.first() {
        return Err(EngineError::Refused(first.to_string()));
    }
    Ok((engine, verdict))
}

/// The I/O thread's connector: connect, check (the verdict kept in `verdict`), and make the
/// groups of `keys` (a worker's queue and the fleet's streams) when given.
pub(crate) fn connector(
    settings: &Settings,
    keys: Option<Keys>,
    verdict: Arc<Mutex<Option<Verdict>>>,
) -> Connector {
    let settings = settings.clone();
    Box::new(move || {
        let mut engine = Engine::connect(&settings.target, settings.password.as_deref(), settings.timeout)?;
        let v = check::check(&mut engine)?;
        let refused = v.refusals.first().map(ToString::to_string);
        if let Ok(mut slot) = verdict.lock() {
            *slot = Some(v);
        }
        if let Some(line) = refused {
            return Err(EngineError::Refused(line));
        }
        if let Some(k) = &keys {
            engine.ensure_groups(k)?;
            engine.announce_worker(k)?;
        }
        Ok(engine)
    })
}

/// This host's name: who holds the listener's lock.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether writes must wait for a replica: behind Sentinel, a failover loses what no replica
/// has.
pub(crate) fn waits_for_replicas(settings: &Settings) -> bool {
    matches!(settings.target.address, Address::Sentinel { .. })
}

/// How messages name the engine (never with a password: the URL has none).
pub(crate) fn describe(settings: &Settings) -> String {
    match &settings.target.address {
        Address::Tcp { host, port, tls } => {
            format!("{}://{host}:{port}/{}", if *tls { "rediss" } else { "redis" }, settings.target.db)
        }
        Address::Unix(path) => format!("redis+unix://{}", path.display()),
        Address::Sentinel { nodes, service } => {
            let nodes: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
            format!("redis-sentinel://{}/{service}", nodes.join(","))
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
