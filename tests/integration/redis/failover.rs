//! Issue 16, test 10: Sentinel failover on loopback. One primary, one replica, three
//! Sentinels (all `redis-server` processes on 127.0.0.1 ports of their own); a worker and a
//! stream of `watcherctl submit`s on SPOOL=redis-sentinel://…, whose writes wait for the
//! replica (WAIT). The primary is replaced while tasks are submitted, by `SENTINEL FAILOVER`
//! and by kill -9: every submit that exited 0 has its result, and the worker carries on on
//! the new primary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::Value;

use crate::support::redis_ops::{ctl_env, free_port, Server};
use crate::support::util::*;
use worker_watcher::engine::redis::keys::Fleet;

const W: &str = "marie";
const SERVICE: &str = "ww";

struct Fleet3 {
    primary: Server,
    _replica: Server,
    sentinels: Vec<Server>,
    ports: (u16, u16),
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

impl Fleet3 {
    fn start(root: &Root) -> Option<Fleet3> {
        let (p0, p1) = (free_port(), free_port());
        let primary = Server::tcp(&root.path().join("primary"), p0, &[])?;
        let replica = Server::tcp(
            &root.path().join("replica"),
            p1,
            &["--replicaof".into(), "127.0.0.1".into(), p0.to_string()],
        )?;
        let sentinels = (0..3)
            .map(|i| Server::sentinel(&root.path().join(format!("sentinel{i}")), free_port(), SERVICE, p0))
            .collect::<Option<Vec<_>>>()?;
        let f = Fleet3 { primary, _replica: replica, sentinels, ports: (p0, p1) };
        // Failover needs the replica in sync and the Sentinels to know each other.
        wait_for("the replica in sync", || {
            let info = text(&f.primary.cmd(&["INFO", "replication"]))?;
            info.contains("connected_slaves:1").then_some(())
        });
        for s in &f.sentinels {
            wait_for("the sentinels to know each other and the replica", || {
                let n = |what: &str| match s.cmd(&["SENTINEL", what, SERVICE]) {
                    Value::Array(a) => a.len(),
                    _ => 0,
                };
                (n("sentinels") == 2 && n("replicas") == 1).then_some(())
            });
        }
        Some(f)
    }

    fn url(&self) -> String {
        let nodes: Vec<String> =
            self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port.unwrap_or(0))).collect();
        format!("redis-sentinel://{}/{SERVICE}", nodes.join(","))
    }

    /// The port of the primary the Sentinels name now.
    fn primary_port(&self) -> Option<u16> {
        let v = self.sentinels[0].cmd(&["SENTINEL", "get-master-addr-by-name", SERVICE]);
        let Value::Array(a) = v else { return None };
        text(a.get(1)?)?.parse().ok()
    }

    /// A connection to the primary of now.
    fn current(&self) -> Option<redis::Connection> {
        let port = self.primary_port()?;
        redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?.get_connection().ok()
    }

    fn result(&self, id: &str) -> Option<String> {
        let key = Fleet::new("ww").worker(W).result(id);
        let v: Value = redis::cmd("GET").arg(&key).query(&mut self.current()?).ok()?;
        text(&v)
    }
}

/// Submits `t-N` tasks one after the other until `stop`; returns the ids acknowledged (exit 0).
fn submitter(root: &Root, url: String, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("t-{n}");
        let r = ctl_env(root, &[("SPOOL", &url)], &["submit", W, "echo hello", "--id", &id]);
        if r.code == 0 {
            acked.lock().expect("lock").push(id);
        }
    }
}

fn failover(kill: bool) {
    let root = Root::new();
    let Some(mut f) = Fleet3::start(&root) else { return };
    let url = f.url();
    let mut worker = Worker::start(&root, W, &[("SPOOL", &url), ("SPOOL_CONSUMER", "host-a")]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = |acked: &Arc<Mutex<Vec<String>>>| acked.lock().expect("lock").len();
    std::thread::scope(|s| {
        let (root, url, stop2, acked2) = (&root, url.clone(), stop.clone(), acked.clone());
        s.spawn(move || submitter(root, url, stop2, acked2));
        wait_for("tasks acknowledged before the failover", || (count(&acked) >= 10).then_some(()));
        let (old, new) = f.ports;
        if kill {
            f.primary.kill9();
        } else {
            f.sentinels[0].cmd(&["SENTINEL", "FAILOVER", SERVICE]);
        }
        wait_for("the Sentinels to name the replica primary", || {
            (f.primary_port() == Some(new)).then_some(())
        });
        if kill {
            // The old primary comes back as the new one's replica: writes can be confirmed again.
            f.primary.restart_with(&["--replicaof".into(), "127.0.0.1".into(), new.to_string()]);
        }
        let before = count(&acked);
        wait_for("tasks acknowledged by the new primary", || (count(&acked) >= before + 10).then_some(()));
        stop.store(true, Ordering::Relaxed);
        assert_ne!(old, new);
    });
    let acked = acked.lock().expect("lock").clone();
    for id in &acked {
        let r = wait_for(&format!("the result of acknowledged task {id}"), || f.result(id));
        assert!(r.contains("\"completed\""), "{id}: {r}\n{}", f.primary.log());
    }
    // One entry on the results stream per task: no result written twice.
    let mut con = f.current().expect("primary");
    let v: Value = redis::cmd("XRANGE").arg("ww:results").arg("-").arg("+").query(&mut con).expect("xrange");
    let Value::Array(entries) = v else { panic!("results stream: {v:?}") };
    let mut ids: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            Value::Array(e) => match e.get(1) {
                Some(Value::Array(f)) => {
                    f.chunks(2).find(|kv| text(&kv[0]).as_deref() == Some("id")).and_then(|kv| text(&kv[1]))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "a result written twice");
    eprintln!("{} submits acknowledged, {all} results", acked.len());
    assert!(worker.child.try_wait().expect("wait").is_none(), "the worker carried on");
    worker.stop();
}

#[test]
fn forced_failover_loses_no_acknowledged_task() {
    failover(false);
}

#[test]
fn kill9_of_the_primary_loses_no_acknowledged_task() {
    failover(true);
}
