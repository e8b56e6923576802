//! watcherctl's [`ControlSpool`] on the engine: [`RedisControl`], one blocking connection
//! (watcherctl is a tool: it may wait, at most SPOOL_TIMEOUT a call).
//!
//! What is where: a worker's queue is its stream `P:{W}:q` (made by the worker at its start,
//! or by `submit --create`); a task is queued by the `enqueue` script (refused while the task
//! or its result exists; behind Sentinel, confirmed by a replica before it is reported
//! queued); results are `P:{W}:result:<id>`; heartbeats are one per host; dead letters the
//! hash `P:{W}:dlq`; the listener's events the stream `P:events`. `submit --wait` and
//! `events --follow` block on `XREAD` (feed.rs).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use redis::Value;

use super::values;
use super::ENQUEUE_MEMORY_LIMIT;
use crate::engine::redis::client::Engine;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::keys::{Fleet, Keys};
use crate::engine::redis::ops::{Call, Queue};
use crate::engine::redis::reply::Reply;
use crate::engine::redis::settings::Settings;
use crate::spool::control::{ControlSpool, EventFeed, Known, Listed, Pending, Place, Queued, Stored, Waiter};
use crate::spool::error::{Error, OpenError};

mod feed;
mod tasks;

pub(crate) struct RedisControl {
    settings: Settings,
    fleet: Fleet,
    engine: RefCell<Engine>,
    /// Writes wait for a replica (behind Sentinel).
    replicas: bool,
    waitaof: bool,
}

fn cause(e: EngineError) -> io::Error {
    match e {
        EngineError::OutOfMemory(m) => io::Error::new(io::ErrorKind::StorageFull, m),
        other => io::Error::other(other.to_string()),
    }
}

impl RedisControl {
    /// Connects and checks the engine.
    pub(crate) fn open(settings: &Settings) -> Result<RedisControl, OpenError> {
        let (engine, verdict) = super::connect(settings).map_err(|e| match e {
            EngineError::Refused(line) => OpenError::Config(format!("SPOOL: {line}")),
            other => OpenError::Io(format!("cannot reach the engine {}: {other}", super::describe(settings))),
        })?;
        Ok(RedisControl {
            fleet: Fleet::new(&settings.prefix),
            settings: settings.clone(),
            engine: RefCell::new(engine),
            replicas: super::waits_for_replicas(settings),
            waitaof: verdict.waitaof,
        })
    }

    fn keys(&self, worker: &str) -> Keys {
        self.fleet.worker(worker)
    }

    /// One command; the error names `at`.
    fn query(&self, doing: &str, at: &str, cmd: &mut redis::Cmd) -> Result<Value, Error> {
        let mut engine = self.engine.borrow_mut();
        cmd.query(engine.connection()).map_err(|e| Error::new(doing, at, cause(e.into())))
    }

    fn run(&self, doing: &str, at: &str, call: &Call) -> Result<Reply, Error> {
        self.engine.borrow_mut().run(call).map_err(|e| Error::new(doing, at, cause(e)))
    }

    fn int(&self, cmd: &mut redis::Cmd) -> i64 {
        self.query("cannot read", "", cmd).ok().and_then(|v| values::int(&v)).unwrap_or(0)
    }

    /// Behind Sentinel: waits until a replica has what was written; an error when none
    /// confirms within SPOOL_TIMEOUT (the write may be lost in a failover: not acknowledged).
    fn replicated(&self, at: &str) -> Result<(), Error> {
        if !self.replicas {
            return Ok(());
        }
        let got = self.engine.borrow_mut().wait_replicas(1, self.settings.timeout, self.waitaof);
        match got {
            Ok(n) if n >= 1 => Ok(()),
            Ok(_) => Err(Error::new(
                "cannot confirm",
                at,
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no replica confirmed the write within SPOOL_TIMEOUT",
                ),
            )),
            Err(e) => Err(Error::new("cannot confirm", at, cause(e))),
        }
    }

    fn at(&self, key: &str) -> String {
        format!("{key} on {}", super::describe(&self.settings))
    }
}

impl ControlSpool for RedisControl {
    fn locate(&self, place: Place) -> String {
        match place {
            Place::Root => super::describe(&self.settings),
            Place::Queue(w) => self.at(&self.keys(w).queue()),
            Place::Heartbeat(w) => self.at(&self.keys(w).hosts()),
            Place::Result(w, id) => self.at(&self.keys(w).result(id)),
            Place::Events => self.at(&self.fleet.events()),
        }
    }

    fn workers(&self) -> BTreeSet<String> {
        let v = self.query("cannot list", "", redis::cmd("SMEMBERS").arg(self.fleet.workers()));
        v.ok().and_then(|v| values::items(&v)).unwrap_or_default().iter().filter_map(values::text).collect()
    }

    fn known(&self, worker: &str) -> Known {
        let k = self.keys(worker);
        Known {
            queue: self.int(redis::cmd("EXISTS").arg(k.queue())) > 0,
            heartbeat: self.int(redis::cmd("ZCARD").arg(k.hosts())) > 0,
            results: false,
            dead_letters: self.int(redis::cmd("HLEN").arg(k.dlq())) > 0,
        }
    }

    fn create_queue(&mut self, worker: &str) -> Result<(), Error> {
        let k = self.keys(worker);
        let mut engine = self.engine.borrow_mut();
        let made = engine.ensure_groups(&k).and_then(|()| engine.announce_worker(&k));
        made.map_err(|e| Error::new("cannot create", self.at(&k.queue()), cause(e)))
    }

    fn pending(&self, worker: &str, id: &str) -> Option<Pending> {
        let v = self
            .query("cannot read", "", redis::cmd("HGET").arg(self.keys(worker).task(id)).arg("phase"))
            .ok()?;
        match values::text(&v)?.as_str() {
            "queued" => Some(Pending::Queued),
            "claimed" | "delayed" | "withdrawn" => Some(Pending::InFlight),
            _ => None,
        }
    }

    fn queued(&self, worker: &str) -> usize {
        let q = Queue::new(self.keys(worker), "watcherctl");
        match self.engine.borrow_mut().run(&q.depth()) {
            Ok(Reply::Depth { length, pending, .. }) => length.saturating_sub(pending) as usize,
            _ => 0,
        }
    }

    fn tasks(&self, worker: &str) -> Result<Vec<Listed>, Error> {
        self.list_tasks(worker)
    }

    fn request_cancel(&mut self, worker: &str, id: &str, by: &str) -> Result<(), Error> {
        self.cancel_request(worker, id, by)
    }

    fn enqueue(&mut self, worker: &str, id: &str, task: Vec<u8>) -> Result<Queued, Error> {
        let k = self.keys(worker);
        let at = self.at(&k.queue());
        if self.int(redis::cmd("EXISTS").arg(k.queue())) == 0 {
            let none =
                io::Error::new(io::ErrorKind::NotFound, "no such queue (the worker makes it when it starts)");
            return Err(Error::new("cannot queue in", at, none));
        }
        let q = Queue::new(k, "watcherctl");
        match self.run("cannot queue in", &at, &q.enqueue(id, &task, None, ENQUEUE_MEMORY_LIMIT))? {
            Reply::Queued { entry } => {
                self.replicated(&at)?;
                Ok(Queued::At(format!("{at}, entry {entry}")))
            }
            Reply::Duplicate { .. } => Ok(Queued::Taken),
            other => Err(Error::new(
                "cannot queue in",
                at,
                io::Error::other(format!("unexpected reply {other:?}")),
            )),
        }
    }

    fn pipe(&self, _worker: &str) -> Option<PathBuf> {
        None
    }

    fn result(&self, worker: &str, id: &str) -> Result<Option<Vec<u8>>, Error> {
        let key = self.keys(worker).result(id);
        let v = self.query("cannot read", &self.at(&key), redis::cmd("GET").arg(&key))?;
        Ok(values::bytes(&v))
    }

    fn result_exists(&self, worker: &str, id: &str) -> bool {
        self.int(redis::cmd("EXISTS").arg(self.keys(worker).result(id))) > 0
    }

    fn set_aside_result(&mut self, worker: &str, id: &str) -> Result<(), Error> {
        let k = self.keys(worker);
        let ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let key = k.result(id);
        self.query(
            "cannot set aside",
            &self.at(&key),
            redis::cmd("RENAME").arg(&key).arg(k.retired_result(id, ms)),
        )?;
        Ok(())
    }

    fn watch_results(&self, worker: &str) -> Result<Box<dyn Waiter>, Error> {
        let stream = self.fleet.results();
        let w = feed::Results::open(&self.settings, stream.clone(), worker)
            .map_err(|e| Error::new("cannot watch", self.at(&stream), cause(e)))?;
        Ok(Box::new(w))
    }

    fn heartbeat(&self, worker: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.heartbeats(worker)?.into_iter().next().map(|(_, b)| b))
    }

    fn heartbeats(&self, worker: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let k = self.keys(worker);
        let hosts = self.query(
            "cannot read",
            &self.at(&k.hosts()),
            redis::cmd("ZREVRANGE").arg(k.hosts()).arg(0).arg(-1),
        )?;
        let mut out = Vec::new();
        for host in values::items(&hosts).unwrap_or_default().iter().filter_map(values::text) {
            let key = k.heartbeat(&host);
            let v = self.query("cannot read", &self.at(&key), redis::cmd("GET").arg(&key))?;
            if let Some(bytes) = values::bytes(&v) {
                out.push((host, bytes));
            }
        }
        Ok(out)
    }

    fn dead_letters(&self, worker: &str) -> Result<Vec<Stored>, Error> {
        let key = self.keys(worker).dlq();
        let v = self.query("cannot read", &self.at(&key), redis::cmd("HGETALL").arg(&key))?;
        let pairs = values::items(&v).unwrap_or_default();
        Ok(pairs
            .chunks(2)
            .filter_map(|kv| {
                let name = values::text(kv.first()?)?;
                Some(Stored {
                    at: self.at(&format!("{key} {name}")),
                    bytes: values::bytes(kv.get(1)?)?,
                    name,
                })
            })
            .collect())
    }

    fn original(&self, worker: &str, letter: &Stored, max: u64) -> Result<Option<Vec<u8>>, Error> {
        let key = self.keys(worker).originals();
        let at = self.at(&format!("{key} {}", letter.name));
        let v = self.query("cannot read", &at, redis::cmd("HGET").arg(&key).arg(&letter.name))?;
        if let Some(mut b) = values::bytes(&v) {
            b.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            return Ok(Some(b));
        }
        // A letter that says it kept one, which is gone since, is an error; one that kept none
        // has none.
        let kept = serde_json::from_slice::<serde_json::Value>(&letter.bytes)
            .is_ok_and(|l| l.get("original_file").is_some_and(|f| !f.is_null()));
        match kept {
            true => Err(Error::new(
                "cannot read",
                at,
                io::Error::new(io::ErrorKind::NotFound, "the original is gone"),
            )),
            false => Ok(None),
        }
    }

    fn drop_original(&mut self, worker: &str, letter: &Stored) {
        let key = self.keys(worker).originals();
        let _ = self.query("cannot remove", "", redis::cmd("HDEL").arg(&key).arg(&letter.name));
    }

    fn retire(&mut self, worker: &str, letter: &Stored) -> Result<(), Error> {
        let k = self.keys(worker);
        let at = self.at(&format!("{} {}", k.dlq(), letter.name));
        let ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let v = self.query("cannot archive", &at, redis::cmd("HGET").arg(k.dlq()).arg(&letter.name))?;
        let Some(bytes) = values::bytes(&v) else {
            return Err(Error::new(
                "cannot archive",
                at,
                io::Error::new(io::ErrorKind::NotFound, "no such dead letter"),
            ));
        };
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(k.retired_letters())
            .arg(format!("{}.{ms}", letter.name))
            .arg(bytes)
            .cmd("HDEL")
            .arg(k.dlq())
            .arg(&letter.name)
            .cmd("ZREM")
            .arg(k.dlq_index())
            .arg(&letter.name)
            .cmd("DEL")
            .arg(k.dead(&letter.name));
        let mut engine = self.engine.borrow_mut();
        p.query::<Value>(engine.connection())
            .map(|_| ())
            .map_err(|e| Error::new("cannot archive", at, cause(e.into())))
    }

    fn purge(&mut self, worker: &str, letters: &[Stored]) -> Result<(), Error> {
        let k = self.keys(worker);
        let mut p = redis::pipe();
        p.atomic();
        for l in letters {
            p.cmd("HDEL").arg(k.dlq()).arg(&l.name);
            p.cmd("ZREM").arg(k.dlq_index()).arg(&l.name);
            p.cmd("HDEL").arg(k.originals()).arg(&l.name);
            p.cmd("DEL").arg(k.dead(&l.name));
        }
        let at = self.at(&k.dlq());
        let mut engine = self.engine.borrow_mut();
        p.query::<Value>(engine.connection())
            .map(|_| ())
            .map_err(|e| Error::new("cannot purge", at, cause(e.into())))
    }

    fn events(&self, follow: bool) -> Result<Box<dyn EventFeed>, Error> {
        let stream = self.fleet.events();
        let f = feed::Events::open(&self.settings, stream.clone(), follow)
            .map_err(|e| Error::new("cannot read", self.at(&stream), cause(e)))?;
        Ok(Box::new(f))
    }
}
