//! The engine under the workers: unreachable, unsafe, stalled, killed, full.

use crate::support::engine::*;
use crate::support::util::*;

const FAST: [(&str, &str); 2] = [("HEARTBEAT_INTERVAL", "0.2"), ("LEASE", "1")];

#[test]
fn an_unreachable_engine_keeps_the_worker_waiting_fed_and_not_ready() {
    let Some(mut engine) = Engine::start(&[]) else { return };
    let a = Host::new("host-a");
    let ids = ids("u", 3);
    assert_eq!(engine.submit("marie", &ids, "hello"), 3);
    engine.kill9();
    let w = a.spawn_watched(&engine, "marie", "400000", &FAST);
    w.wait_notify("STATUS=waiting for the spool");
    // The watchdog is fed while it waits: three pings after the status.
    wait_for("WATCHDOG=1 while waiting", || {
        let notes = w.notifications();
        let from = notes.iter().position(|n| n.contains("STATUS=waiting for the spool"))?;
        (notes[from..].iter().filter(|n| n.contains("WATCHDOG=1")).count() >= 3).then_some(())
    });
    assert!(!w.notifications().iter().any(|n| n.contains("READY=1")), "{:?}", w.notifications());
    assert!(a.runs().is_empty(), "no task starts while the engine is away");
    engine.restart();
    w.wait_notify("READY=1");
    let results = engine.wait_results("marie", &ids);
    assert!(results.iter().all(|r| r["status"] == "completed"), "{results:?}");
}

fn refused(setting: &[&str], named: &str) {
    let Some(engine) = Engine::start(setting) else { return };
    let a = Host::new("host-a");
    let mut w = a.spawn(&engine, "marie", &FAST);
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(78), "{}", w.log_text());
    let log = w.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(named)).collect();
    assert_eq!(lines.len(), 1, "one line naming {named}: {log}");
}

#[test]
fn an_engine_without_appendonly_is_refused_with_exit_78() {
    refused(&["--appendonly", "no"], "appendonly");
}

#[test]
fn an_evicting_engine_is_refused_with_exit_78() {
    refused(&["--maxmemory-policy", "allkeys-lru"], "maxmemory-policy");
}

#[test]
fn a_stall_of_the_engine_longer_than_the_lease_reclaims_nothing_among_10_hosts() {
    let Some(engine) = Engine::start(&[]) else { return };
    let hosts: Vec<Host> = (0..10).map(|i| Host::new(&format!("host-{i}"))).collect();
    let env = [FAST[0], FAST[1], ("MAX_CONCURRENT_TASKS", "2")];
    let _workers: Vec<Worker> = hosts.iter().map(|h| h.start(&engine, "marie", &env)).collect();
    let ids = ids("s", 10);
    engine.submit("marie", &ids, "sleep 30");
    let runs = || hosts.iter().map(|h| h.runs().len()).sum::<usize>();
    wait_for("every task running", || (runs() == 10).then_some(()));
    // Writes (every script) wait for three leases; then a write goes through: the end.
    engine.cmd(&["CLIENT", "PAUSE", "3000", "WRITE"]);
    engine.cmd(&["SET", "probe", "after the pause"]);
    let after = engine.now_ms();
    // Every host beats two leases after the pause: each had its chance to reclaim since.
    let hosts_key = engine.keys("marie").hosts();
    wait_for("two leases of heartbeats after the pause", || {
        let Value::Array(v) = engine.cmd(&["ZRANGE", &hosts_key, "0", "-1", "WITHSCORES"]) else {
            return None;
        };
        let scores: Vec<i64> =
            v.chunks(2).filter_map(|p| text(&p[1]).parse::<f64>().ok()).map(|s| s as i64).collect();
        (scores.len() == 10 && scores.iter().all(|s| *s > after + 2000)).then_some(())
    });
    assert_eq!(runs(), 10, "no task ran twice");
    for id in &ids {
        let reclaims = engine.cmd(&["HGET", &engine.keys("marie").task(id), "reclaims"]);
        assert!(matches!(&reclaims, Value::Nil) || text(&reclaims) == "0", "{id} reclaimed: {reclaims:?}");
    }
    for (i, h) in hosts.iter().enumerate() {
        assert_eq!(
            engine.pending("marie", Some(&h.consumer)),
            h.runs().len(),
            "host-{i} still holds its own"
        );
    }
}

use redis::Value;

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn killed_under_load(fsync: &str) {
    let Some(mut engine) = Engine::start(&["--appendfsync", fsync]) else { return };
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    let env = [FAST[0], FAST[1], ("MAX_CONCURRENT_TASKS", "3")];
    let _wa = a.start(&engine, "marie", &env);
    let _wb = b.start(&engine, "marie", &env);
    let ids = ids("k", 60);
    assert_eq!(engine.submit("marie", &ids, "sleep 0.05"), ids.len(), "every task acknowledged");
    let done = || ids.iter().filter(|id| engine.result("marie", id).is_some()).count();
    wait_for("a third of the results", || (done() >= 20).then_some(()));
    engine.kill9();
    engine.restart();
    let results = engine.wait_results("marie", &ids);
    assert!(results.iter().all(|r| r["status"] == "completed"), "{results:?}");
    let stream = engine.stream("ww:results");
    let mut seen = std::collections::HashMap::new();
    for (_, fields) in &stream {
        let id = fields.iter().find(|(k, _)| k == "id").map(|(_, v)| v.clone()).unwrap_or_default();
        *seen.entry(id).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a result doubled: {seen:?}");
    assert_eq!(seen.len(), ids.len());
    wait_for("nothing pending", || (engine.pending("marie", None) == 0).then_some(()));
}

#[test]
fn the_engine_killed_and_restarted_under_two_hosts_loses_and_doubles_nothing_aof_always() {
    killed_under_load("always");
}

#[test]
fn the_engine_killed_and_restarted_under_two_hosts_loses_and_doubles_nothing_aof_everysec() {
    killed_under_load("everysec");
}

#[test]
fn a_full_engine_refuses_enqueues_clearly_and_holds_completes_until_there_is_room() {
    let Some(engine) = Engine::start(&["--maxmemory", "64mb"]) else { return };
    let a = Host::new("host-a");
    let w = a.start(&engine, "marie", &[FAST[0], FAST[1], ("FAKE_SLEEP", "1")]);
    engine.submit("marie", &["held".to_string()], "sleep 3");
    wait_for("the task to run", || (!a.runs().is_empty()).then_some(()));
    // Memory full while it runs: more used than maxmemory (lowered under what is used, as
    // when the data grows past it; noeviction keeps everything).
    engine.cmd(&["SET", "filler", &"x".repeat(2 << 20)]);
    engine.cmd(&["CONFIG", "SET", "maxmemory", "1mb"]);
    let ran = engine.ctl(&a.root, &["submit", "marie", "--id", "late", "--", "hello"]);
    assert_ne!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("OOM") || ran.stderr.to_lowercase().contains("memory"), "{ran:?}");
    assert_eq!(ran.stderr.trim().lines().count(), 1, "one clear line: {ran:?}");
    wait_for("the complete refused and held", || w.log_text().contains("OOM").then_some(()));
    assert!(engine.result("marie", "held").is_none());
    engine.cmd(&["CONFIG", "SET", "maxmemory", "64mb"]);
    assert!(w.log_text().contains("OOM"));
    let r = engine.wait_results("marie", &["held".to_string()]);
    assert_eq!(r[0]["status"], "completed");
    assert_eq!(engine.stream("ww:results").len(), 1);
}
