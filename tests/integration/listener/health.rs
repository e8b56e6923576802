//! Health: a worker killed with -9 is announced unhealthy once (its heartbeat went stale),
//! and recovered once when it runs again; a stopped worker and an open breaker too.

use serde_json::Value;

use super::*;

fn health_events<'a>(events: &'a [Value], worker: &str) -> Vec<(&'a str, &'a Value)> {
    events
        .iter()
        .filter(|e| {
            e["worker"] == worker && (e["event"] == "worker_unhealthy" || e["event"] == "worker_recovered")
        })
        .map(|e| (e["event"].as_str().unwrap_or_default(), e))
        .collect()
}

#[test]
fn a_worker_killed_with_9_is_unhealthy_once_and_recovered_once_when_it_restarts() {
    let root = Root::new();
    let (l, target) = start_judging(&root, &[]);
    // Intervals long enough that a loaded machine does not make a live worker stale.
    let mut marie = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "0.5")]);
    let _anga = Worker::start(&root, "anga", &[("HEARTBEAT_INTERVAL", "1")]);
    let pid = marie.pid();
    root.wait_heartbeat("marie", "marie's heartbeat", |h| h["pid"] == pid);
    marie.kill9();
    let events = root.wait_events("marie unhealthy", |e| !health_events(e, "marie").is_empty());
    let (kind, e) = health_events(&events, "marie")[0];
    assert_eq!(kind, "worker_unhealthy");
    assert_eq!(e["why"], serde_json::json!(["stale"]));
    assert_eq!(e["heartbeat"]["pid"], pid, "{e}");
    // Announced at the stale limit: its time is the last heartbeat's plus three intervals.
    let ts = e["heartbeat"]["timestamp"].as_f64().expect("timestamp");
    let limit = e["stale_after_seconds"].as_f64().expect("stale_after_seconds");
    assert!((limit - 1.5).abs() < 1e-9, "three heartbeat intervals: {limit}");
    let at = humantime::parse_rfc3339(e["time"].as_str().expect("time")).expect("rfc3339");
    let at = at.duration_since(std::time::UNIX_EPOCH).expect("epoch").as_secs_f64();
    assert!((at - (ts + 1.5)).abs() < 0.002, "time {at} vs heartbeat {ts} + 1.5");
    let s = target.scrape();
    assert_eq!(s.get("watcher_worker_up{worker=\"marie\"}"), 0.0);
    assert_eq!(s.get("watcher_healthy{worker=\"marie\"}"), 0.0);
    assert_eq!(s.get("watcher_worker_up{worker=\"anga\"}"), 1.0);
    let _marie = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "0.5")]);
    let events = root.wait_events("marie recovered", |e| health_events(e, "marie").len() >= 2);
    let seen: Vec<&str> = health_events(&events, "marie").iter().map(|(k, _)| *k).collect();
    assert_eq!(seen, vec!["worker_unhealthy", "worker_recovered"]);
    let rec = health_events(&events, "marie")[1].1;
    assert_eq!(rec["unhealthy_event"], e["id"]);
    assert!(health_events(&events, "anga").is_empty(), "anga stayed healthy: {events:#?}");
    wait_for("marie up again", || {
        (target.scrape().get("watcher_worker_up{worker=\"marie\"}") == 1.0).then_some(())
    });
    assert!(l.log_text().contains("worker unhealthy"), "{}", l.log_text());
}

#[test]
fn a_stopped_worker_and_an_open_breaker_are_unhealthy() {
    let root = Root::new();
    let (_l, target) = start_judging(&root, &[]);
    let mut marie = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "1")]);
    let anga = [
        ("HEARTBEAT_INTERVAL", "1"),
        ("MAX_RETRIES", "0"),
        ("CIRCUIT_BREAKER_THRESHOLD", "1"),
        ("CIRCUIT_BREAKER_TIMEOUT", "3600"),
    ];
    let _anga = Worker::start(&root, "anga", &anga);
    marie.stop();
    root.submit("anga", "f", "fail");
    let events = root.wait_events("both unhealthy", |e| {
        !health_events(e, "marie").is_empty() && !health_events(e, "anga").is_empty()
    });
    assert_eq!(health_events(&events, "marie")[0].1["why"], serde_json::json!(["stopped"]));
    assert_eq!(health_events(&events, "anga")[0].1["why"], serde_json::json!(["circuit_open"]));
    let s = target.scrape();
    assert_eq!(s.get("watcher_circuit_breaker_state{worker=\"anga\"}"), 1.0);
    assert_eq!(s.get("watcher_worker_up{worker=\"anga\"}"), 1.0, "alive, though unhealthy");
    assert_eq!(s.get("watcher_healthy{worker=\"anga\"}"), 0.0);
    assert_eq!(s.get("watcher_listener_unhealthy_workers"), 2.0);
}

#[test]
fn a_worker_named_in_workers_without_a_heartbeat_is_unhealthy() {
    let root = Root::new();
    let (_l, _) = start_judging(&root, &[("WORKERS", "ghost")]);
    let events = root.wait_events("ghost unhealthy", |e| !health_events(e, "ghost").is_empty());
    assert_eq!(health_events(&events, "ghost")[0].1["why"], serde_json::json!(["no_heartbeat"]));
    let _g = worker(&root, "ghost");
    root.wait_events("ghost recovered", |e| health_events(e, "ghost").len() == 2);
}

/// A fake worker's heartbeat, written as a worker writes it (a temp file renamed into place),
/// its timestamp `skew` seconds off the host's clock, with `n` as its queue size (which the
/// scrape shows once the listener has read it).
fn skewed_beat(root: &Root, worker: &str, skew: f64, n: u64) {
    let dir = root.path().join("heartbeats");
    std::fs::create_dir_all(&dir).expect("heartbeats");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let hb = serde_json::json!({
        "worker": worker, "pid": 1, "hostname": "elsewhere", "timestamp": now.as_secs_f64() + skew,
        "status": "idle", "circuit_state": "closed", "heartbeat_interval": 2.0, "queue_size": n,
    });
    let tmp = dir.join(format!(".{worker}.json.tmp"));
    std::fs::write(&tmp, hb.to_string()).expect("write heartbeat");
    std::fs::rename(&tmp, dir.join(format!("{worker}.json"))).expect("rename heartbeat");
}

/// What a step of the wall clock does to the listener's view, shown with workers whose
/// clocks are a day behind and a day ahead of it: a heartbeat that keeps being rewritten is
/// healthy whatever its timestamp says (no `worker_unhealthy` / `worker_recovered` pair), and
/// one that stops being rewritten goes stale by the listener's own clock, then recovers.
#[test]
fn heartbeats_stamped_by_a_stepped_clock_raise_no_false_alarm_and_still_go_stale() {
    const DAY: f64 = 86_400.0;
    let root = Root::new();
    let (_l, target) = start_judging(&root, &[]);
    let skews = [("behind", -DAY), ("ahead", DAY)];
    for n in 1..=5u64 {
        for (worker, skew) in skews {
            skewed_beat(&root, worker, skew + n as f64, n);
            let queue = format!("watcher_task_queue_size{{worker=\"{worker}\"}}");
            let s = target.scrape_when("the heartbeat read", |s| s.map.get(&queue) == Some(&(n as f64)));
            assert_eq!(s.get(&format!("watcher_healthy{{worker=\"{worker}\"}}")), 1.0, "{worker}");
        }
    }
    for (worker, _) in skews {
        assert!(health_events(&root.events(), worker).is_empty(), "{worker}: {:#?}", root.events());
    }
    let both = |e: &[Value]| skews.iter().all(|(w, _)| !health_events(e, w).is_empty());
    let events = root.wait_events("both stale once no longer rewritten", both);
    for (worker, skew) in skews {
        let (kind, e) = health_events(&events, worker)[0];
        assert_eq!((kind, &e["why"]), ("worker_unhealthy", &serde_json::json!(["stale"])), "{e}");
        skewed_beat(&root, worker, skew + 10.0, 10);
    }
    let events =
        root.wait_events("both recovered", |e| skews.iter().all(|(w, _)| health_events(e, w).len() >= 2));
    for (worker, _) in skews {
        let seen: Vec<&str> = health_events(&events, worker).iter().map(|(k, _)| *k).collect();
        assert_eq!(seen, ["worker_unhealthy", "worker_recovered"], "{worker}");
    }
}
