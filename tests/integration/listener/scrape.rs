//! The host's one scrape target: every worker's families labelled `worker`, from results
//! and heartbeats, plus the listener's own; one HELP/TYPE per family (promtool).

use super::*;
use crate::support::scrape::promtool_check;

#[test]
fn the_endpoint_carries_both_workers_and_passes_promtool() {
    let root = Root::new();
    let (_l, target) = start(&root, &[]);
    let _m = worker(&root, "marie");
    let _a = worker(&root, "anga");
    root.submit("marie", "m1", "hello");
    root.submit("marie", "m2", "hello");
    root.submit_json("marie", "m3", &serde_json::json!({"description": "sleep 5", "timeout": 0.2}));
    root.submit("anga", "a1", "hello");
    root.submit("anga", "a2", "fail 4");
    root.wait_events("five task events", |e| e.len() >= 5);
    let s = wait_for("the heartbeats of both", || {
        let s = target.scrape();
        (s.map.contains_key("watcher_task_queue_size{worker=\"marie\"}")
            && s.map.contains_key("watcher_task_queue_size{worker=\"anga\"}"))
        .then_some(s)
    });
    for (series, value) in [
        ("watcher_tasks_processed_total{worker=\"marie\",status=\"completed\"}", 2.0),
        ("watcher_tasks_processed_total{worker=\"marie\",status=\"failed\"}", 1.0),
        ("watcher_tasks_failed_total{worker=\"marie\",reason=\"timeout\"}", 1.0),
        ("watcher_tasks_processed_total{worker=\"anga\",status=\"completed\"}", 1.0),
        ("watcher_tasks_failed_total{worker=\"anga\",reason=\"exit_code\"}", 1.0),
        ("watcher_task_duration_seconds_count{worker=\"marie\"}", 3.0),
        ("watcher_task_duration_seconds_count{worker=\"anga\"}", 2.0),
        ("watcher_listener_results_total{worker=\"anga\",status=\"unreadable\"}", 0.0),
        ("watcher_agent_tokens_total{worker=\"anga\",kind=\"input\"}", 10.0),
        ("watcher_circuit_breaker_state{worker=\"anga\"}", 0.0),
        ("watcher_max_concurrent_tasks{worker=\"marie\"}", 3.0),
        ("watcher_worker_up{worker=\"marie\"}", 1.0),
        ("watcher_healthy{worker=\"anga\"}", 1.0),
        ("watcher_listener_workers", 2.0),
        ("watcher_listener_events_total{event=\"task_failed\"}", 2.0),
        ("watcher_listener_backlog_results", 0.0),
    ] {
        assert_eq!(s.get(series), value, "{series}");
    }
    assert!(s.get("watcher_heartbeat_age_seconds{worker=\"marie\"}") >= 0.0);
    assert!(s.get("process_resident_memory_bytes") > 0.0);
    for family in ["watcher_tasks_processed_total", "watcher_task_duration_seconds", "watcher_worker_up"] {
        assert_eq!(s.text.matches(&format!("# TYPE {family} ")).count(), 1, "{family}");
    }
    promtool_check(&s.text);
}

#[test]
fn healthz_and_the_http_errors() {
    let root = Root::new();
    let (_l, target) = start(&root, &[]);
    let a = target.get("/healthz");
    assert_eq!(a.status, 200, "{a:?}");
    let body: serde_json::Value = serde_json::from_str(&a.body).expect("json");
    assert_eq!(body["healthy"], true);
    assert_eq!(target.get("/nope").status, 404);
    let a = target.exchange(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(a.status, 405);
    assert_eq!(target.exchange(b"GET /metrics HTTP/1.1\r\n\r\n").status, 400);
    promtool_check(&target.scrape().text);
}

#[test]
fn an_unreadable_file_in_a_result_folder_is_counted_not_announced() {
    let root = Root::new();
    let (l, target) = start(&root, &[("WORKERS", "marie")]);
    let dir = root.path().join("results").join("marie");
    std::fs::write(dir.join("junk.json"), "not a result").expect("junk");
    wait_for("the junk counted", || {
        (target.scrape().get("watcher_listener_results_total{worker=\"marie\",status=\"unreadable\"}") == 1.0)
            .then_some(())
    });
    assert!(root.events().iter().all(|e| e.get("task_id").is_none()), "{:#?}", root.events());
    assert!(l.log_text().contains("not a result"), "{}", l.log_text());
}

#[test]
fn the_listener_serves_the_age_of_a_queue_that_waits_and_its_worker_serves_the_same() {
    let root = Root::new();
    let (_l, target) = start(&root, &[]);
    let sock = root.path().join("marie.metrics.sock");
    let listen = sock.display().to_string();
    let mut env = FAST_WORKER.to_vec();
    env.extend([
        ("MAX_CONCURRENT_TASKS", "1"),
        ("ENABLE_METRICS", "true"),
        ("METRICS_LISTEN", listen.as_str()),
    ]);
    let _m = Worker::start(&root, "marie", &env);
    root.submit("marie", "busy", "hang");
    root.wait_heartbeat("marie", "the hung task running", |h| h["active_tasks"] == 1);
    root.submit("marie", "waits", "hello");
    let hb = root.wait_heartbeat("marie", "the queued task dated", |h| h["oldest_queued_at"].is_f64());
    assert!(hb["oldest_queued_at"].as_f64() <= hb["timestamp"].as_f64(), "{hb}");
    let age = |s: &crate::support::scrape::Samples| {
        s.get("watcher_oldest_queued_task_age_seconds{worker=\"marie\"}")
    };
    let first = age(&target.scrape_when("an age on the listener", |s| {
        s.map.get("watcher_oldest_queued_task_age_seconds{worker=\"marie\"}").is_some_and(|a| *a > 0.0)
    }));
    // The age grows between heartbeats: it is now minus the arrival, not a copy.
    target.scrape_when("the age growing", |s| age(s) > first);
    let own = Target::Unix(sock).scrape();
    assert!(own.get("watcher_oldest_queued_task_age_seconds{worker=\"marie\"}") > 0.0, "{}", own.text);
}
