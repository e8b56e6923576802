//! The circuit breaker opens after the threshold, holds new tasks, half-opens, closes.

use crate::support::util::*;

#[test]
fn opens_holds_half_opens_and_closes() {
    let root = Root::new();
    let w = Worker::start(
        &root,
        "marie",
        &[
            ("CIRCUIT_BREAKER_THRESHOLD", "2"),
            ("CIRCUIT_BREAKER_TIMEOUT", "2"),
            ("MAX_RETRIES", "0"),
            ("MAX_CONCURRENT_TASKS", "1"),
        ],
    );
    root.submit("marie", "f1", "fail");
    root.wait_result("marie", "f1");
    root.submit("marie", "f2", "fail");
    root.wait_result("marie", "f2");
    let hb = root.wait_heartbeat("marie", "the breaker open", |h| h["circuit_state"] == "open");
    assert_eq!(hb["status"], "circuit_open");
    let open_until = hb["circuit_open_until"].as_f64().expect("open until");
    root.submit("marie", "good", "hello");
    let r = root.wait_result("marie", "good");
    assert_eq!(r["status"], "completed");
    // Held, not failed: it started only when the breaker let one trial through.
    let started = humantime::parse_rfc3339(r["started_at"].as_str().expect("started_at")).expect("time");
    let started = started.duration_since(std::time::UNIX_EPOCH).expect("epoch").as_secs_f64();
    assert!(started >= open_until - 0.05, "started {started} before the breaker half-opened at {open_until}");
    assert_eq!(root.dlq("marie").len(), 2, "only the two failures are dead letters");
    root.wait_heartbeat("marie", "the breaker closed", |h| h["circuit_state"] == "closed");
    // systemd's status line told each state.
    w.wait_notify("STATUS=breaker open until");
    w.wait_notify("STATUS=breaker half-open");
    w.wait_notify("STATUS=idle, 0 queued, breaker closed");
    assert!(w.notifications().iter().any(|n| n.contains("READY=1")));
}
