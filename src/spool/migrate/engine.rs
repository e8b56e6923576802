//! The engine side of a migration: one worker's tasks as the engine holds them (queued,
//! claimed by a host that is gone, waiting for a retry in the delayed set), its dead letters
//! and the originals kept beside them; a task queued by the `enqueue` script (idempotent by
//! id), taken out by `take.lua` once its file is written, and whether any host of the worker
//! is live.

use std::io;

use redis::Value;

use super::files;
use crate::engine::redis::client::Engine;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::keys::{Fleet, Keys, GROUP};
use crate::engine::redis::ops::Queue;
use crate::engine::redis::reply::Reply;
use crate::engine::redis::settings::Settings;
use crate::spool::redis::{self as backend, values, ENQUEUE_MEMORY_LIMIT};

/// A task as the engine holds it.
#[derive(Clone, Debug)]
pub(crate) struct EngineTask {
    pub(crate) id: String,
    pub(crate) doc: Vec<u8>,
    /// The daemon's `_watcher` state, if one was saved.
    pub(crate) state: Option<Vec<u8>>,
    /// `queued`, `claimed` (by a host that is gone), `delayed`.
    pub(crate) phase: String,
    pub(crate) entry: String,
    /// Reclaims the engine counted since the state was saved.
    pub(crate) reclaims: u64,
    /// A retry's due time, server ms.
    pub(crate) due_ms: Option<i64>,
}

/// A dead letter as the engine holds it.
#[derive(Clone, Debug)]
pub(crate) struct EngineLetter {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) original: Option<Vec<u8>>,
}

/// What adding a record found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Added {
    New,
    /// The same record is there already.
    Present,
    /// Something else of that name is there.
    Other(String),
}

pub(crate) struct EngineSide {
    engine: Engine,
    keys: Keys,
    replicas: bool,
    waitaof: bool,
    settings: Settings,
}

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl EngineSide {
    /// Connects (an unsafe engine is refused: `EngineError::Refused`).
    pub(crate) fn open(settings: &Settings, worker: &str) -> Result<EngineSide, EngineError> {
        let (engine, verdict) = backend::connect(settings)?;
        Ok(EngineSide {
            engine,
            keys: Fleet::new(&settings.prefix).worker(worker),
            replicas: backend::waits_for_replicas(settings),
            waitaof: verdict.waitaof,
            settings: settings.clone(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        backend::describe(&self.settings)
    }

    fn query(&mut self, cmd: &redis::Cmd) -> io::Result<Value> {
        cmd.query(self.engine.connection()).map_err(err)
    }

    /// The worker's hosts whose heartbeat is live (`now`: this host's clock, seconds).
    pub(crate) fn live_hosts(&mut self, now: f64) -> io::Result<Vec<String>> {
        let hosts = self.query(redis::cmd("ZRANGE").arg(self.keys.hosts()).arg(0).arg(-1))?;
        let mut live = Vec::new();
        for host in values::items(&hosts).unwrap_or_default().iter().filter_map(values::text) {
            let hb = self.query(redis::cmd("GET").arg(self.keys.heartbeat(&host)))?;
            if values::bytes(&hb).is_some_and(|b| files::live(&b, now).is_some()) {
                live.push(host);
            }
        }
        Ok(live)
    }

    /// Makes the worker's queue (its stream and group), as a worker does at its start.
    pub(crate) fn make_queue(&mut self) -> io::Result<()> {
        let k = self.keys.clone();
        self.engine.ensure_groups(&k).and_then(|()| self.engine.announce_worker(&k)).map_err(err)
    }

    fn task_hash(&mut self, id: &str) -> io::Result<Vec<Value>> {
        let v = self.query(redis::cmd("HGETALL").arg(self.keys.task(id)))?;
        Ok(values::items(&v).unwrap_or_default())
    }

    fn read_task(&mut self, id: &str, due_ms: Option<i64>) -> io::Result<Option<EngineTask>> {
        let h = self.task_hash(id)?;
        let get = |n: &str| values::field(&h, n).and_then(|v| values::bytes(&v));
        let text = |n: &str| get(n).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let Some(doc) = get("doc") else { return Ok(None) };
        Ok(Some(EngineTask {
            id: id.to_owned(),
            doc,
            state: get("state").filter(|s| !s.is_empty()),
            phase: text("phase"),
            entry: text("entry"),
            reclaims: text("reclaims").parse().unwrap_or(0),
            due_ms,
        }))
    }

    /// Every task of the worker: the queue's entries in order (a stale entry, whose task moved
    /// on to another, is left out), then the retries waiting.
    pub(crate) fn tasks(&mut self) -> io::Result<Vec<EngineTask>> {
        let v = self.query(redis::cmd("XRANGE").arg(self.keys.queue()).arg("-").arg("+"))?;
        let mut out = Vec::new();
        for e in values::entries(&v).unwrap_or_default() {
            let Some(id) = e.get("id") else { continue };
            if let Some(t) = self.read_task(&id, None)? {
                if t.entry == e.id && t.phase != "delayed" {
                    out.push(t);
                }
            }
        }
        let v = self.query(redis::cmd("ZRANGE").arg(self.keys.delayed()).arg(0).arg(-1).arg("WITHSCORES"))?;
        for pair in values::items(&v).unwrap_or_default().chunks(2) {
            let (Some(id), Some(due)) =
                (pair.first().and_then(values::text), pair.get(1).and_then(values::text))
            else {
                continue;
            };
            let due = due.parse::<f64>().ok().map(|d| d as i64);
            if let Some(t) = self.read_task(&id, due)? {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The engine's clock, ms.
    pub(crate) fn time_ms(&mut self) -> io::Result<i64> {
        let v = self.query(&redis::cmd("TIME"))?;
        let parts: Vec<i64> = values::items(&v).unwrap_or_default().iter().filter_map(values::int).collect();
        match parts.as_slice() {
            [s, us] => Ok(s * 1000 + us / 1000),
            _ => Err(err("TIME: unexpected reply")),
        }
    }

    /// The document of task `id` while the engine holds it.
    pub(crate) fn doc(&mut self, id: &str) -> io::Result<Option<Vec<u8>>> {
        let v = self.query(redis::cmd("HGET").arg(self.keys.task(id)).arg("doc"))?;
        Ok(values::bytes(&v))
    }

    /// Queues a task with its state, once: `Ok(true)` queued now, `Ok(false)` the engine has a
    /// task or a result of that id.
    pub(crate) fn enqueue(&mut self, id: &str, doc: &[u8], state: Option<&[u8]>) -> io::Result<bool> {
        let q = Queue::new(self.keys.clone(), "watcherctl");
        match self.engine.run(&q.enqueue(id, doc, state, ENQUEUE_MEMORY_LIMIT)).map_err(err)? {
            Reply::Queued { .. } => Ok(true),
            Reply::Duplicate { .. } => Ok(false),
            other => Err(err(format!("enqueue: unexpected reply {other:?}"))),
        }
    }

    /// Takes a task out, if it is still as read: `true` taken (or gone already).
    pub(crate) fn take(&mut self, t: &EngineTask) -> io::Result<bool> {
        static TAKE: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(include_str!("take.lua")));
        let k = &self.keys;
        let v: Value = TAKE
            .key(k.queue())
            .key(k.task(&t.id))
            .key(k.inflight())
            .key(k.delayed())
            .arg(GROUP)
            .arg(&t.id)
            .arg(&t.entry)
            .arg(&t.phase)
            .invoke(self.engine.connection())
            .map_err(err)?;
        let tag = values::items(&v).and_then(|i| i.first().and_then(values::text)).unwrap_or_default();
        Ok(tag != "changed")
    }

    /// The dead letters, with the originals kept beside them.
    pub(crate) fn dead_letters(&mut self) -> io::Result<Vec<EngineLetter>> {
        let v = self.query(redis::cmd("HGETALL").arg(self.keys.dlq()))?;
        let mut out = Vec::new();
        for kv in values::items(&v).unwrap_or_default().chunks(2) {
            let (Some(name), Some(bytes)) =
                (kv.first().and_then(values::text), kv.get(1).and_then(values::bytes))
            else {
                continue;
            };
            let o = self.query(redis::cmd("HGET").arg(self.keys.originals()).arg(&name))?;
            out.push(EngineLetter { name, bytes, original: values::bytes(&o) });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Adds a dead letter (listed at `at_ms`) and its original, unless one of that name is
    /// there.
    pub(crate) fn add_dead_letter(
        &mut self,
        name: &str,
        bytes: &[u8],
        original: Option<&[u8]>,
        at_ms: u128,
    ) -> io::Result<Added> {
        let k = self.keys.clone();
        let there = self.query(redis::cmd("HGET").arg(k.dlq()).arg(name))?;
        if let Some(b) = values::bytes(&there) {
            return Ok(if b == bytes { Added::Present } else { Added::Other("another dead letter".into()) });
        }
        let mut p = redis::pipe();
        p.atomic().cmd("HSETNX").arg(k.dlq()).arg(name).arg(bytes).ignore();
        p.cmd("ZADD").arg(k.dlq_index()).arg("NX").arg(at_ms as u64).arg(name).ignore();
        if let Some(o) = original {
            p.cmd("HSETNX").arg(k.originals()).arg(name).arg(o).ignore();
        }
        p.exec(self.engine.connection()).map_err(err)?;
        Ok(Added::New)
    }

    /// Removes a dead letter, its original and the task hash kept for `dlq retry`.
    pub(crate) fn drop_dead_letter(&mut self, name: &str) -> io::Result<()> {
        let k = self.keys.clone();
        let mut p = redis::pipe();
        p.atomic().cmd("HDEL").arg(k.dlq()).arg(name).ignore();
        p.cmd("ZREM").arg(k.dlq_index()).arg(name).ignore();
        p.cmd("HDEL").arg(k.originals()).arg(name).ignore();
        p.cmd("DEL").arg(k.dead(name)).ignore();
        p.exec(self.engine.connection()).map_err(err)
    }

    /// Behind Sentinel: waits until a replica has every write so far (a failover would lose
    /// what none has); an error when none confirms within SPOOL_TIMEOUT.
    pub(crate) fn replicated(&mut self) -> io::Result<()> {
        if !self.replicas {
            return Ok(());
        }
        match self.engine.wait_replicas(1, self.settings.timeout, self.waitaof).map_err(err)? {
            0 => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no replica confirmed the writes within SPOOL_TIMEOUT",
            )),
            _ => Ok(()),
        }
    }
}
