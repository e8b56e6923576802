//! The orchestrator-listener on the engine: killed with kill -9 under load, it announces every
//! result exactly once (on the events stream and in its files); its /metrics serves each
//! host's heartbeat of a worker, labelled `host`, and a host that stops goes stale alone.

use std::collections::HashMap;
use std::process::{Child, Stdio};

use crate::support::engine::*;
use crate::support::scrape::{Samples, Target};
use crate::support::util::*;

fn listener(root: &Root, engine: &Engine) -> Child {
    let url = engine.url();
    listener_command(root, &[("SPOOL", url.as_str())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("orchestrator-listener")
}

/// Task events on the engine's events stream, by task id.
fn announced(engine: &Engine) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for (_, fields) in engine.stream("ww:events") {
        let Some((_, json)) = fields.iter().find(|(k, _)| k == "event") else { continue };
        let Ok(e) = serde_json::from_str::<serde_json::Value>(json) else { continue };
        if e["event"] == "task_completed" {
            *out.entry(e["task_id"].as_str().unwrap_or_default().to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn the_listener_killed_under_load_announces_each_result_exactly_once() {
    let Some(engine) = Engine::start(&[]) else { return };
    let a = Host::new("host-a");
    let _w = a.start(
        &engine,
        "marie",
        &[("HEARTBEAT_INTERVAL", "0.2"), ("LEASE", "1"), ("MAX_CONCURRENT_TASKS", "4")],
    );
    let home = Root::new();
    let mut first = listener(&home, &engine);
    let ids = ids("l", 80);
    engine.submit("marie", &ids, "hello");
    wait_for("a quarter announced", || (announced(&engine).len() >= 20).then_some(()));
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let mut second = listener(&home, &engine);
    engine.wait_results("marie", &ids);
    let seen = wait_for("every result announced", || {
        let seen = announced(&engine);
        (seen.len() == ids.len()).then_some(seen)
    });
    assert!(seen.values().all(|n| *n == 1), "an event doubled: {seen:?}");
    wait_for("one file per result", || (home.results("marie").len() == ids.len()).then_some(()));
    let _ = second.kill();
    let _ = second.wait();
}

/// The listener with its metrics on a unix socket of `root`, started and READY.
fn scraped_listener(root: &Root, engine: &Engine) -> (Worker, Target) {
    let (url, sock) = (engine.url(), root.path().join("listener.metrics.sock"));
    let listen = sock.display().to_string();
    let env = [("SPOOL", url.as_str()), ("ENABLE_METRICS", "true"), ("METRICS_LISTEN", listen.as_str())];
    let l = Worker::spawn_command(root, "listener", listener_command(root, &env));
    l.wait_notify("READY=1");
    (l, Target::Unix(sock))
}

/// `family{worker="marie",host="HOST"}`, if served.
fn of_host(s: &Samples, family: &str, host: &str) -> Option<f64> {
    s.map.get(&format!("{family}{{worker=\"marie\",host=\"{host}\"}}")).copied()
}

#[test]
fn the_listener_serves_each_hosts_heartbeat_and_a_host_that_stops_goes_stale_alone() {
    let Some(engine) = Engine::start(&[]) else { return };
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    // Stale after three heartbeat intervals: 0.6 s.
    let env = [("HEARTBEAT_INTERVAL", "0.2"), ("LEASE", "1"), ("MAX_CONCURRENT_TASKS", "2")];
    let _wa = a.start(&engine, "marie", &env);
    let wb = b.start(&engine, "marie", &env);
    let home = Root::new();
    let (_l, target) = scraped_listener(&home, &engine);
    let up = |s: &Samples, host: &str| of_host(s, "watcher_worker_up", host);
    let s =
        target.scrape_when("both hosts up", |s| up(s, "host-a") == Some(1.0) && up(s, "host-b") == Some(1.0));
    for family in ["watcher_heartbeat_age_seconds", "watcher_active_tasks", "watcher_max_concurrent_tasks"] {
        for host in ["host-a", "host-b"] {
            assert!(of_host(&s, family, host).is_some(), "{family} of {host}:\n{}", s.text);
        }
    }
    assert_eq!(of_host(&s, "watcher_max_concurrent_tasks", "host-b"), Some(2.0));
    assert!(!s.map.contains_key("watcher_worker_up{worker=\"marie\"}"), "{}", s.text);
    assert_eq!(s.get("watcher_healthy{worker=\"marie\"}"), 1.0, "the worker's own verdict");
    // host-b frozen: its series go stale; host-a's stay fresh.
    wb.signal(libc::SIGSTOP);
    let s = target.scrape_when("host-b stale", |s| up(s, "host-b") == Some(0.0));
    assert_eq!(up(&s, "host-a"), Some(1.0), "{}", s.text);
    let age_b = of_host(&s, "watcher_heartbeat_age_seconds", "host-b").expect("host-b's age");
    assert!(age_b > 0.6, "stale means older than its stale limit: {age_b}");
    // Still stale at a later scrape, as host-a's heartbeats keep coming.
    let later = target.scrape_when("host-a's heartbeats to come on", |t| {
        of_host(t, "watcher_heartbeat_age_seconds", "host-b") > Some(age_b + 0.6)
    });
    assert_eq!((up(&later, "host-a"), up(&later, "host-b")), (Some(1.0), Some(0.0)), "{}", later.text);
    assert_eq!(later.get("watcher_healthy{worker=\"marie\"}"), 1.0, "alive while a host is");
    // Thawed, it is up again.
    wb.signal(libc::SIGCONT);
    target.scrape_when("host-b up again", |s| up(s, "host-b") == Some(1.0));
}
