//! The suites' fixtures on a real engine (a `redis-server` per test, or the binary
//! WW_REDIS_SERVER names): the Redis backends, and what the other programs write into the
//! engine as they do (the worker's scripts, the listener's events).

use std::time::Duration;

use crate::engine::redis::client::Engine;
use crate::engine::redis::keys::{Fleet, Keys};
use crate::engine::redis::ops::Queue;
use crate::spool::control::ControlSpool;
use crate::spool::redis::control::RedisControl;
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

    fn cmd(&mut self, args: &[&[u8]]) {
        let mut c = redis::cmd(std::str::from_utf8(args[0]).expect("a command name"));
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query::<redis::Value>(self.engine.connection()).expect("command");
    }

    /// A worker writes the result of `id` (and its entry on the results stream).
    pub(super) fn result(&mut self, worker: &str, id: &str, json: &str) {
        let key = self.keys(worker).result(id);
        self.cmd(&[b"SET", key.as_bytes(), json.as_bytes()]);
        let results = Fleet::new("ww").results();
        self.cmd(&[
            b"XADD",
            results.as_bytes(),
            b"*",
            b"worker",
            worker.as_bytes(),
            b"id",
            id.as_bytes(),
            b"status",
            b"completed",
        ]);
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
        self.world.engine.ensure_groups(&self.world.keys(worker)).expect("groups");
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
}
