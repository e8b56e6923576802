//! The listener's loop on the spool in memory: no folders, no processes, no inotify; the
//! loop's own decisions (announce once, count once, commit with the state) are what is
//! tested, in milliseconds. With the folders, tests/integration/listener/ runs the binaries.

use std::path::Path;
use std::time::SystemTime;

use serde_json::json;

use super::*;
use crate::log::Sink;
use crate::spool::mem::Memory;

/// A listener on `spool`, its settings from an empty root (no metrics endpoint, errors only
/// in the log).
fn listener(spool: &Memory, root: &Path) -> Listener {
    let mut layers = Layers::default();
    let root = root.display().to_string();
    for (k, v) in [("WATCHER_ROOT", root.as_str()), ("ENABLE_METRICS", "false"), ("LOG_LEVEL", "ERROR")] {
        layers.env.insert(k.into(), v.into());
    }
    let cfg = ListenerConfig::load(&layers).expect("config");
    let log =
        Logger::with_identity(cfg.tuning.log_level, cfg.log_format, Sink::Stderr, lifecycle::IDENTIFIER, "");
    let mut l = Listener::with_spool(cfg, layers, log, Box::new(spool.listener())).expect("listener");
    l.start_watching().expect("start");
    l.spool.prepare();
    l
}

fn result(spool: &Memory, id: &str, status: &str) {
    let r =
        json!({"task_id": id, "worker": "marie", "status": status, "finished_at": "2026-01-01T00:00:00Z"});
    spool.write_result("marie", id, r.to_string().as_bytes(), SystemTime::now());
}

/// The task ids of the task events written, in order.
fn announced(spool: &Memory) -> Vec<String> {
    let events = spool.events();
    let values = events.values().map(|b| serde_json::from_slice::<serde_json::Value>(b).expect("json"));
    values.filter_map(|v| v["task_id"].as_str().map(str::to_string)).collect()
}

#[test]
fn each_result_is_announced_and_counted_once_across_a_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let spool = Memory::new();
    result(&spool, "t1", "completed");
    result(&spool, "t2", "failed");
    let mut l = listener(&spool, root.path());
    l.turn();
    assert_eq!(announced(&spool), ["t1", "t2"]);
    assert!(!l.state_dirty && !l.spool.dirty(), "committed with the events");
    drop(l);
    let mut l = listener(&spool, root.path());
    l.turn();
    assert_eq!(announced(&spool).len(), 2, "nothing again after a restart");
    let counts = &l.state.workers["marie"].counts;
    assert_eq!((counts.completed, counts.failed), (1, 1), "the counts came back");
    result(&spool, "t3", "completed");
    l.read_watch();
    l.turn();
    assert_eq!(announced(&spool), ["t1", "t2", "t3"]);
}

#[test]
fn a_worker_that_shows_up_is_followed_and_its_stopped_heartbeat_announced() {
    let root = tempfile::tempdir().expect("tempdir");
    let spool = Memory::new();
    let mut l = listener(&spool, root.path());
    l.turn();
    assert!(l.workers.is_empty());
    let beat =
        json!({"timestamp": crate::sys::clock::now_f64(), "status": "stopped", "heartbeat_interval": 10});
    spool.write_heartbeat("anga", beat.to_string().as_bytes());
    l.read_watch();
    l.turn();
    assert!(l.workers.contains_key("anga"), "followed");
    let kinds: Vec<serde_json::Value> =
        spool.events().values().map(|b| serde_json::from_slice(b).expect("json")).collect();
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!((&kinds[0]["event"], &kinds[0]["worker"]), (&json!("worker_unhealthy"), &json!("anga")));
}

#[test]
fn a_worker_is_judged_healthy_while_one_of_its_hosts_is() {
    let (now, mono) = (crate::sys::clock::now_f64(), Instant::now());
    let host = |name: &str, status: &str| {
        let beat = health::Beat {
            timestamp: now,
            status: status.into(),
            heartbeat_interval: Some(10.0),
            ..health::Beat::default()
        };
        let fresh = Some(freshness::Freshness::read(None, now, true, mono, now));
        HostBeat { host: name.into(), reading: HeartbeatReading::Beat(beat), fresh }
    };
    // host-a stopped last (its heartbeat is the freshest) while host-b works on.
    let live = Live { hosts: vec![host("host-a", "stopped"), host("host-b", "idle")], ..Live::default() };
    let j = live.judged(true, now, mono, None);
    assert!(j.verdict.problems.is_empty() && j.verdict.up, "{:?}", j.verdict);
    // Every host stopped: the freshest tells.
    let live = Live { hosts: vec![host("host-a", "stopped"), host("host-b", "stopped")], ..Live::default() };
    assert_eq!(live.judged(true, now, mono, None).verdict.problems, [health::STOPPED]);
    // None left: missing.
    assert_eq!(Live::default().judged(true, now, mono, None).verdict.problems, [health::NO_HEARTBEAT]);
}
