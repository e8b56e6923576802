//! The suites' fixtures on a real engine (a `redis-server` per test, or the binary
//! WW_REDIS_SERVER names): the Redis backends, and what the other programs write into the
//! engine as they do (the worker's scripts, the listener's events).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::engine::redis::client::Engine;
use crate::engine::redis::keys::{Fleet, Keys};
use crate::engine::redis::ops::Queue;
use crate::spool::control::ControlSpool;
use crate::spool::listener::ListenerSpool;
use crate::spool::redis::control::RedisControl;
use crate::spool::redis::listener::RedisListener;
use crate::spool::redis::testing::{settings, Server};
use crate::spool::redis::{EVENT_ID, EVENT_JSON};

/// The engine and a connection to it, as the daemons would use it.
pub(super) struct World {
    pub(super) server: Server,
    pub(super) engine: Engine,
}

impl World {
    pub(super) fn start() -> Option<World> {
        let server = Server::start(&[])?;
        let engine = server.engine();
        Some(World { server, engine })
    }

    pub(super) fn keys(&self, worker: &str) -> Keys {
        Fleet::new("ww").worker(worker)
    }

    fn cmd(&mut self, args: &[&[u8]]) -> redis::Value {
        let mut c = redis::cmd(std::str::from_utf8(args[0]).expect("a command name"));
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query::<redis::Value>(self.engine.connection()).expect("command")
    }

    /// A worker writes the result of `id` (and its entry on the results stream, at `at`
    /// when given and later than the stream's newest).
    pub(super) fn result_at(&mut self, worker: &str, id: &str, json: &str, at: Option<SystemTime>) {
        let key = self.keys(worker).result(id);
        self.cmd(&[b"SET", key.as_bytes(), json.as_bytes()]);
        let results = Fleet::new("ww").results();
        let entry = match at {
            Some(t) => format!("{}-*", t.duration_since(UNIX_EPOCH).expect("after 1970").as_millis()),
            None => "*".into(),
        };
        let fields: [&[u8]; 6] =
            [b"worker", worker.as_bytes(), b"id", id.as_bytes(), b"status", b"completed"];
        let mut args: Vec<&[u8]> = vec![b"XADD", results.as_bytes(), entry.as_bytes()];
        args.extend(fields);
        self.cmd(&args);
    }

    pub(super) fn result(&mut self, worker: &str, id: &str, json: &str) {
        self.result_at(worker, id, json, None);
    }

    pub(super) fn heartbeat(&mut self, worker: &str, host: &str, json: &str) {
        let q = Queue::new(self.keys(worker), host);
        self.engine.run(&q.heartbeat(json.as_bytes(), Duration::from_secs(60))).expect("heartbeat");
    }

    pub(super) fn event(&mut self, id: &str, json: &str) {
        let events = Fleet::new("ww").events();
        self.cmd(&[
            b"XADD",
            events.as_bytes(),
            b"*",
            EVENT_ID.as_bytes(),
            id.as_bytes(),
            EVENT_JSON.as_bytes(),
            json.as_bytes(),
        ]);
    }
}

/// watcherctl on the engine.
pub(super) struct Control {
    world: World,
    spool: RedisControl,
}

impl Control {
    pub(super) fn start() -> Option<Control> {
        let world = World::start()?;
        let spool =
            RedisControl::open(&settings(&world.server, "host-a", Duration::from_secs(30))).expect("open");
        Some(Control { world, spool })
    }
}

impl super::control::Fixture for Control {
    fn spool(&mut self) -> &mut dyn ControlSpool {
        &mut self.spool
    }

    fn queue(&mut self, worker: &str) {
        let k = self.world.keys(worker);
        self.world.engine.ensure_groups(&k).expect("groups");
        self.world.engine.announce_worker(&k).expect("announce");
    }

    fn claim(&mut self, worker: &str, id: &str) {
        let q = Queue::new(self.world.keys(worker), "host-a");
        let got = self.world.engine.run(&q.claim(1)).expect("claim").delivered().expect("claimed");
        assert_eq!(got.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [id]);
    }

    fn result(&mut self, worker: &str, id: &str, json: &str) {
        self.world.result(worker, id, json);
    }

    fn heartbeat(&mut self, worker: &str, json: &str) {
        self.world.heartbeat(worker, "host-a", json);
    }

    fn dead_letter(&mut self, worker: &str, name: &str, json: &str, original: Option<&str>) {
        let k = self.world.keys(worker);
        let mut letter: serde_json::Value = serde_json::from_str(json).expect("json");
        if original.is_some() {
            letter["original_file"] = format!("{} {name}", k.originals()).into();
        }
        let json = letter.to_string();
        self.world.cmd(&[b"HSET", k.dlq().as_bytes(), name.as_bytes(), json.as_bytes()]);
        self.world.cmd(&[b"ZADD", k.dlq_index().as_bytes(), b"1", name.as_bytes()]);
        if let Some(text) = original {
            self.world.cmd(&[b"HSET", k.originals().as_bytes(), name.as_bytes(), text.as_bytes()]);
        }
    }

    fn event(&mut self, id: &str, json: &str) {
        self.world.event(id, json);
    }

    fn receipt(&mut self, worker: &str, id: &str, json: &str) {
        let k = self.world.keys(worker);
        let v = self.world.cmd(&[b"HGET", k.task(id).as_bytes(), b"entry"]);
        let entry = crate::spool::redis::values::text(&v).expect("a held task");
        let q = Queue::new(k, "host-a");
        let held = crate::engine::redis::ops::Held { id: id.into(), entry };
        self.world.engine.run(&q.receipt(&held, json.as_bytes())).expect("receipt");
    }
}

/// The listener on the engine.
pub(super) struct Listener {
    world: World,
    dir: tempfile::TempDir,
}

impl Listener {
    pub(super) fn start() -> Option<Listener> {
        Some(Listener { world: World::start()?, dir: tempfile::tempdir().expect("tempdir") })
    }
}

impl super::listener::Fixture for Listener {
    fn open(&mut self) -> Box<dyn ListenerSpool> {
        let s = settings(&self.world.server, "host-a", Duration::from_secs(30));
        let layout = crate::spool::Layout::new(self.dir.path());
        Box::new(RedisListener::open(&s, &layout, false).expect("open"))
    }

    fn result(&mut self, worker: &str, id: &str, finished: &str, written: SystemTime) {
        let json =
            serde_json::json!({"task_id": id, "worker": "w", "status": "completed", "finished_at": finished});
        self.world.result_at(worker, id, &json.to_string(), Some(written));
    }

    fn heartbeat(&mut self, worker: &str, json: &str) {
        self.world.heartbeat(worker, "host-a", json);
    }

    fn hosts(&self) -> Vec<&'static str> {
        vec!["host-a", "host-b"]
    }

    fn host_heartbeat(&mut self, worker: &str, host: &str, json: &str) {
        self.world.heartbeat(worker, host, json);
    }

    fn queue(&mut self, worker: &str) {
        let k = self.world.keys(worker);
        self.world.engine.ensure_groups(&k).expect("groups");
        self.world.engine.announce_worker(&k).expect("announce");
    }

    fn events(&self) -> BTreeMap<String, Value> {
        let mut c = self.world.server.engine();
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(Fleet::new("ww").events())
            .arg("-")
            .arg("+")
            .query(c.connection())
            .expect("XRANGE");
        let entries = crate::spool::redis::values::entries(&v).expect("entries");
        entries
            .into_iter()
            .map(|e| {
                let json = e.get(EVENT_JSON).expect("event");
                (e.get(EVENT_ID).expect("id"), serde_json::from_str(&json).expect("json"))
            })
            .collect()
    }
}
