//! A real Redis (or Valkey: WW_REDIS_SERVER) started by each test that needs one, on a unix
//! socket in a temp folder with AOF on; the daemons pointed at it (SPOOL), each "host" with a
//! spool root and SPOOL_CONSUMER of its own; and the engine read back (results, streams,
//! pending entries). Without a server binary a test says SKIP and passes, unless CI is set:
//! there it fails (.ci/run installs redis-server).

use std::path::PathBuf;
use std::time::Duration;

use redis::Value;
use serde_json::Value as Json;

use crate::support::redis_ops::Server;
use crate::support::util::*;
use worker_watcher::engine::redis::client::Engine as Client;
use worker_watcher::engine::redis::keys::{Fleet, Keys};
use worker_watcher::engine::redis::ops::Queue;
use worker_watcher::engine::redis::settings::{Address, Target};

/// A data server on a unix socket (redis_ops' [`Server::unix`]) in a temp folder of its own,
/// read back as the daemons' engine.
pub struct Engine {
    // Dropped after the server (fields drop in order): the server is killed in its folder.
    server: Server,
    dir: tempfile::TempDir,
}

impl Engine {
    /// Starts a server with `extra` settings (`--name value` pairs); `None`: SKIP.
    pub fn start(extra: &[&str]) -> Option<Engine> {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::unix(dir.path(), extra)?;
        Some(Engine { server, dir })
    }

    pub fn socket(&self) -> PathBuf {
        self.server.socket()
    }

    /// Where the agents of every host keep their sessions.
    pub fn sessions(&self) -> PathBuf {
        self.dir.path().join("sessions")
    }

    /// SPOOL for the daemons.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// kill -9, waited for.
    pub fn kill9(&mut self) {
        self.server.kill9();
    }

    /// Starts it again on the same folder (its AOF) and socket.
    pub fn restart(&mut self) {
        self.server.restart_with(&[]);
    }

    pub fn target(&self) -> Target {
        Target { address: Address::Unix(self.socket()), username: None, db: 0 }
    }

    /// A connection with the scripts loaded.
    pub fn client(&self) -> Client {
        Client::connect(&self.target(), None, Duration::from_secs(10)).expect("connect")
    }

    /// One command.
    pub fn cmd(&self, args: &[&str]) -> Value {
        let mut c = self.client();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(c.connection()).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub fn int(&self, args: &[&str]) -> i64 {
        match self.cmd(args) {
            Value::Int(n) => n,
            other => panic!("{args:?}: not an integer: {other:?}"),
        }
    }

    pub fn keys(&self, worker: &str) -> Keys {
        Fleet::new("ww").worker(worker)
    }

    /// Queues tasks `ids` for `worker` with `description`, as watcherctl would (the worker's
    /// queue made first); returns how many the engine acknowledged.
    pub fn submit(&self, worker: &str, ids: &[String], description: &str) -> usize {
        let keys = self.keys(worker);
        let mut c = self.client();
        c.ensure_groups(&keys).expect("groups");
        let q = Queue::new(keys, "test");
        let calls: Vec<_> = ids
            .iter()
            .map(|id| {
                let doc = serde_json::json!({"task_id": id, "description": description}).to_string();
                q.enqueue(id, doc.as_bytes(), None, 0)
            })
            .collect();
        let replies = c.run_batch(&calls).expect("enqueue");
        replies.iter().filter(|r| r.is_ok()).count()
    }

    /// The result of task `id`, if written.
    pub fn result(&self, worker: &str, id: &str) -> Option<Json> {
        match self.cmd(&["GET", &self.keys(worker).result(id)]) {
            Value::BulkString(b) => serde_json::from_slice(&b).ok(),
            _ => None,
        }
    }

    /// The results of `ids` as they are now.
    pub fn results_of(&self, worker: &str, ids: &[String]) -> Vec<Json> {
        ids.iter().filter_map(|id| self.result(worker, id)).collect()
    }

    /// Waits until every task of `ids` has a result; returns them.
    pub fn wait_results(&self, worker: &str, ids: &[String]) -> Vec<Json> {
        wait_for("every result", || ids.iter().map(|id| self.result(worker, id)).collect::<Option<Vec<_>>>())
    }

    /// The entries of a stream: `(entry id, fields)`.
    pub fn stream(&self, key: &str) -> Vec<(String, Vec<(String, String)>)> {
        self.stream_range(key, "-")
    }

    /// The entries of stream `key` from `from` (an entry id, or `-`) to `from` (or the end).
    fn stream_range(&self, key: &str, from: &str) -> Vec<(String, Vec<(String, String)>)> {
        let text = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            other => format!("{other:?}"),
        };
        let to = if from == "-" { "+" } else { from };
        let Value::Array(entries) = self.cmd(&["XRANGE", key, from, to]) else { return Vec::new() };
        entries
            .iter()
            .filter_map(|e| {
                let Value::Array(e) = e else { return None };
                let Value::Array(f) = e.get(1)? else { return None };
                let fields = f.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect();
                Some((text(e.first()?), fields))
            })
            .collect()
    }

    /// Entries pending in `worker`'s group, held by `consumer` (all hosts: `None`).
    pub fn pending(&self, worker: &str, consumer: Option<&str>) -> usize {
        let q = self.keys(worker).queue();
        let mut args = vec!["XPENDING", q.as_str(), "workers", "-", "+", "100000"];
        if let Some(c) = consumer {
            args.push(c);
        }
        match self.cmd(&args) {
            Value::Array(a) => a.len(),
            _ => 0,
        }
    }

    /// The task ids of the entries pending in `worker`'s group held by `consumer`.
    pub fn pending_tasks(&self, worker: &str, consumer: &str) -> Vec<String> {
        let q = self.keys(worker).queue();
        let Value::Array(pending) = self.cmd(&["XPENDING", &q, "workers", "-", "+", "100000", consumer])
        else {
            return Vec::new();
        };
        let entry = |p: &Value| match p {
            Value::Array(f) => match f.first() {
                Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            },
            _ => None,
        };
        let task = |e: &str| {
            let (_, fields) = self.stream_range(&q, e).into_iter().next()?;
            fields.into_iter().find(|(k, _)| k == "id").map(|(_, v)| v)
        };
        pending.iter().filter_map(entry).filter_map(|e| task(&e)).collect()
    }

    /// watcherctl ARGS against this engine (SPOOL set), with `root` for what stays local.
    pub fn ctl(&self, root: &Root, args: &[&str]) -> crate::support::ctl::Ran {
        crate::support::redis_ops::ctl_env(root, &[("SPOOL", &self.url())], args)
    }

    /// The server's clock, in ms.
    pub fn now_ms(&self) -> i64 {
        let Value::Array(t) = self.cmd(&["TIME"]) else { panic!("TIME") };
        let n = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).parse::<i64>().unwrap_or(0),
            _ => 0,
        };
        n(&t[0]) * 1000 + n(&t[1]) / 1000
    }
}

/// One host of a fleet: a spool root of its own (its lock, its logs) and its SPOOL_CONSUMER.
pub struct Host {
    pub root: Root,
    pub consumer: String,
}

impl Host {
    pub fn new(consumer: &str) -> Host {
        Host { root: Root::new(), consumer: consumer.into() }
    }

    /// Starts worker `name` on `engine` and waits for READY=1; its agents log their starts
    /// to [`Host::start_log`], and keep their sessions in the engine's folder, shared by the
    /// hosts (as agents whose sessions live on shared storage).
    pub fn start(&self, engine: &Engine, name: &str, env: &[(&str, &str)]) -> Worker {
        let env = self.env(engine, env);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Worker::start(&self.root, name, &env)
    }

    /// Starts worker `name` without waiting for READY=1.
    pub fn spawn(&self, engine: &Engine, name: &str, env: &[(&str, &str)]) -> Worker {
        let env = self.env(engine, env);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Worker::spawn(&self.root, name, &env)
    }

    /// Starts worker `name` as systemd would with `WatchdogSec=` (WATCHDOG_USEC `usec`, and
    /// WATCHDOG_PID its own pid, set by a shell that execs it), without waiting for READY=1.
    pub fn spawn_watched(&self, engine: &Engine, name: &str, usec: &str, env: &[(&str, &str)]) -> Worker {
        let mut env = self.env(engine, env);
        env.push(("WATCHDOG_USEC", usec.to_string()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let script = r#"WATCHDOG_PID=$$ exec "$@""#;
        let cmd = command_via(&["sh", "-c", script, "sh", BIN], &self.root, name, &env);
        Worker::spawn_command(&self.root, name, cmd)
    }

    fn env<'a>(&'a self, engine: &'a Engine, env: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
        let mut all = vec![
            ("SPOOL", engine.url()),
            ("SPOOL_CONSUMER", self.consumer.clone()),
            ("FAKE_START_LOG", self.start_log().display().to_string()),
            ("FAKE_SESSION_DIR", engine.sessions().display().to_string()),
        ];
        all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        all
    }

    /// Lines of the stand-in's start log of this host (FAKE_START_LOG): one per agent run.
    pub fn start_log(&self) -> PathBuf {
        self.root.path().join("starts.log")
    }

    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.start_log()).unwrap_or_default().lines().map(str::to_string).collect()
    }
}

/// `n` task ids `prefix-0` ….
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}
