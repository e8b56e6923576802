//! Scraping a running worker: the families and their values after known outcomes, the
//! exposition checked by promtool, /healthz both ways, and the HTTP errors.

use serde_json::json;

use crate::support::scrape::*;
use crate::support::util::*;

/// A worker serving metrics on a unix socket in its root.
pub fn start(root: &Root, env: &[(&str, &str)]) -> (Worker, Target) {
    let sock = root.path().join("marie.metrics.sock");
    let listen = sock.display().to_string();
    let mut all = vec![("ENABLE_METRICS", "true"), ("METRICS_LISTEN", listen.as_str())];
    all.extend_from_slice(env);
    let w = Worker::start(root, "marie", &all);
    (w, Target::Unix(sock))
}

fn series(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

#[test]
fn families_tell_what_happened() {
    let root = Root::new();
    let (_w, target) = start(
        &root,
        &[
            ("MAX_RETRIES", "0"),
            ("INITIAL_RETRY_DELAY", "0"),
            ("CIRCUIT_BREAKER_THRESHOLD", "100"),
            ("HEARTBEAT_INTERVAL", "1"),
        ],
    );
    for id in ["ok1", "ok2", "ok3"] {
        root.submit("marie", id, "hello");
    }
    root.submit("marie", "exit", "fail 3");
    root.submit("marie", "agent", "agent-error");
    root.submit_json("marie", "once", &json!({"description": "fail-once", "max_retries": 1}));
    std::fs::write(root.queue("marie").join("bad.json"), "not json").expect("bad task");
    for id in ["ok1", "ok2", "ok3", "exit", "agent", "once", "bad"] {
        root.wait_result("marie", id);
    }
    // Outcomes are counted once durable, when the loop collects them from the spool's writer.
    let s = target.scrape_when("the seven outcomes counted", |s| {
        s.get(&series("watcher_tasks_processed_total", "status=\"completed\",worker=\"marie\""))
            + s.get(&series("watcher_tasks_processed_total", "status=\"failed\",worker=\"marie\""))
            >= 7.0
    });
    let processed = |status: &str| {
        s.get(&series("watcher_tasks_processed_total", &format!("status=\"{status}\",worker=\"marie\"")))
    };
    assert_eq!(processed("completed"), 4.0);
    assert_eq!(processed("failed"), 3.0);
    let failed = |reason: &str| {
        s.get(&series("watcher_tasks_failed_total", &format!("reason=\"{reason}\",worker=\"marie\"")))
    };
    assert_eq!(failed("exit_code"), 1.0);
    assert_eq!(failed("agent_error"), 1.0);
    assert_eq!(failed("invalid"), 1.0);
    assert_eq!(failed("timeout"), 0.0);
    assert_eq!(s.get("watcher_task_retries_total{reason=\"exit_code\",worker=\"marie\"}"), 1.0);
    assert_eq!(s.get("watcher_dead_letters_total{reason=\"invalid\",worker=\"marie\"}"), 1.0);
    // One observation per agent run: three, one, one, and two for the retried task.
    assert_eq!(s.get("watcher_task_duration_seconds_count{worker=\"marie\"}"), 7.0);
    assert_eq!(s.get("watcher_task_duration_seconds_bucket{worker=\"marie\",le=\"+Inf\"}"), 7.0);
    assert_eq!(s.get("watcher_task_queue_size{worker=\"marie\"}"), 0.0);
    assert_eq!(s.get("watcher_active_tasks{worker=\"marie\"}"), 0.0);
    assert_eq!(s.get("watcher_circuit_breaker_state{worker=\"marie\"}"), 0.0);
    // Every claim of a queued file: seven files.
    assert_eq!(s.get("watcher_task_detection_latency_seconds_count{worker=\"marie\"}"), 7.0);
    // The stand-in reports $0.0012 and 10/7 tokens per success, $0.002 and 3/1 for its error.
    let cost = s.get("watcher_agent_cost_usd_total{worker=\"marie\"}");
    assert!((cost - (4.0 * 0.0012 + 0.002)).abs() < 1e-9, "cost {cost}");
    assert_eq!(s.get("watcher_agent_tokens_total{kind=\"input\",worker=\"marie\"}"), 43.0);
    assert_eq!(s.get("watcher_agent_tokens_total{kind=\"output\",worker=\"marie\"}"), 29.0);
    assert_eq!(s.get("watcher_agent_tokens_total{kind=\"cache_read_input\",worker=\"marie\"}"), 20.0);
    assert_eq!(s.get("watcher_healthy{worker=\"marie\"}"), 1.0);
    assert_eq!(
        s.get(&format!("watcher_build_info{{version=\"{}\",worker=\"marie\"}}", env!("CARGO_PKG_VERSION"))),
        1.0
    );
    assert!(s.get("process_resident_memory_bytes{worker=\"marie\"}") > 0.0);
    // The heartbeat's counters agree.
    let hb = root.wait_heartbeat("marie", "counters in the heartbeat", |h| h["processed"] == 7);
    assert_eq!((hb["failed"].as_u64(), hb["retried"].as_u64()), (Some(3), Some(1)));
    promtool_check(&s.text);
}

#[test]
fn families_are_there_before_any_task_and_pass_promtool() {
    let root = Root::new();
    let (_w, target) = start(&root, &[]);
    let s = target.scrape();
    for name in [
        "watcher_tasks_processed_total{status=\"completed\",worker=\"marie\"}",
        "watcher_tasks_failed_total{reason=\"timeout\",worker=\"marie\"}",
        "watcher_task_duration_seconds_count{worker=\"marie\"}",
        "watcher_task_queue_size{worker=\"marie\"}",
        "watcher_active_tasks{worker=\"marie\"}",
        "watcher_circuit_breaker_state{worker=\"marie\"}",
    ] {
        assert_eq!(s.get(name), 0.0, "{name}");
    }
    promtool_check(&s.text);
}

#[test]
fn healthz_is_503_while_the_breaker_is_open() {
    let root = Root::new();
    let (_w, target) = start(
        &root,
        &[("MAX_RETRIES", "0"), ("CIRCUIT_BREAKER_THRESHOLD", "1"), ("CIRCUIT_BREAKER_TIMEOUT", "3600")],
    );
    let a = target.get("/healthz");
    assert_eq!(a.status, 200, "{a:?}");
    let body: serde_json::Value = serde_json::from_str(&a.body).expect("json");
    assert_eq!((body["healthy"].as_bool(), body["worker"].as_str()), (Some(true), Some("marie")));
    root.submit("marie", "f1", "fail");
    root.wait_heartbeat("marie", "the breaker open", |h| h["circuit_state"] == "open");
    let a = target.get("/healthz");
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.body.contains("circuit breaker open"), "{}", a.body);
    let s = target.scrape();
    assert_eq!(s.get("watcher_circuit_breaker_state{worker=\"marie\"}"), 1.0);
    assert_eq!(s.get("watcher_healthy{worker=\"marie\"}"), 0.0);
    // Held, not failed: a queued task waits and shows in the queue.
    root.submit("marie", "held", "hello");
    wait_for("the held task in the queue gauge", || {
        (target.scrape().get("watcher_task_queue_size{worker=\"marie\"}") == 1.0).then_some(())
    });
    assert!(target.scrape().get("watcher_oldest_queued_task_age_seconds{worker=\"marie\"}") >= 0.0);
}

#[test]
fn not_found_method_not_allowed_and_bad_requests() {
    let root = Root::new();
    let (_w, target) = start(&root, &[]);
    assert_eq!(target.get("/nope").status, 404);
    assert_eq!(target.get("/metrics?x=1").status, 200);
    let a = target.exchange(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(a.status, 405);
    assert!(a.head.contains("\r\nallow: get, head"), "{}", a.head);
    let a = target.exchange(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    for bad in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"GET /metrics HTTP/1.1\r\n\r\n",
        b"GET metrics HTTP/1.0\r\n\r\n",
    ] {
        assert_eq!(target.exchange(bad).status, 400, "{}", String::from_utf8_lossy(bad));
    }
    // A client that closes without a whole request gets nothing, and harms nothing.
    drop(target.connect());
    assert_eq!(target.get("/healthz").status, 200);
}

#[test]
fn healthz_is_503_while_no_heartbeat_can_be_written() {
    let root = Root::new();
    let (w, target) = start(&root, &[("HEARTBEAT_INTERVAL", "0.1")]);
    assert_eq!(target.get("/healthz").status, 200);
    // The heartbeat folder replaced by a file: every heartbeat write fails, even as root.
    let dir = root.path().join("heartbeats");
    let aside = root.path().join("heartbeats.aside");
    std::fs::rename(&dir, &aside).expect("move the folder aside");
    std::fs::write(&dir, "not a folder").expect("a file in its place");
    let a = wait_for("/healthz to say 503", || Some(target.get("/healthz")).filter(|a| a.status == 503));
    assert!(a.body.contains("no heartbeat written"), "{}", a.body);
    assert_eq!(target.scrape().get("watcher_healthy{worker=\"marie\"}"), 0.0);
    std::fs::remove_file(&dir).expect("remove the file");
    std::fs::rename(&aside, &dir).expect("put the folder back");
    wait_for("/healthz to say 200 again", || (target.get("/healthz").status == 200).then_some(()));
    drop(w);
}
