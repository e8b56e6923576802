//! Retries wait on the engine's clock: hosts whose clocks are an hour apart (faketime) agree
//! on when a retry is due, since the only time a host sends is a span (the delay), and the
//! due time and its promotion are the server's TIME.

use crate::support::engine::*;
use crate::support::util::*;

const HOUR_MS: i64 = 3_600_000;

/// libfaketime, preloaded into the worker itself (the `faketime` wrapper would stand between
/// the test and the worker's pid).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn faketime() -> bool {
    let found = std::path::Path::new(LIBFAKETIME).is_file();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "faketime not found and CI is set: .ci/run installs it");
        eprintln!("SKIP: faketime not found (apt-get install faketime)");
    }
    found
}

#[test]
fn a_retry_set_by_a_host_an_hour_ahead_is_run_in_time_by_a_host_an_hour_behind() {
    if !faketime() {
        return;
    }
    let Some(engine) = Engine::start(&[]) else { return };
    let (a, b) = (Host::new("host-a"), Host::new("host-b"));
    // One attempt counter for both hosts (fail-once fails the task's first attempt only).
    let state = engine.sessions().with_file_name("agents");
    let state = state.display().to_string();
    let env = [
        ("HEARTBEAT_INTERVAL", "0.2"),
        ("LEASE", "1"),
        ("INITIAL_RETRY_DELAY", "2"),
        ("FAKE_STATE_DIR", state.as_str()),
        ("DONT_FAKE_MONOTONIC", "1"),
    ];
    std::fs::create_dir_all(&state).expect("state dir");
    let clock = |offset: &'static str| [("LD_PRELOAD", LIBFAKETIME), ("FAKETIME", offset)];
    let mut wa = a.start(&engine, "marie", &[&env[..], &clock("+1h")[..]].concat());
    engine.submit("marie", &["c".to_string()], "fail-once");
    let delayed = engine.keys("marie").delayed();
    let due = wait_for("the retry waiting in the delayed set", || {
        let v = engine.cmd(&["ZSCORE", &delayed, "c"]);
        match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).parse::<f64>().ok(),
            _ => None,
        }
    }) as i64;
    let now = engine.now_ms();
    // Due on the engine's clock: within the retry delay, not an hour away.
    assert!((due - now).abs() < HOUR_MS / 2, "due {due} vs the engine's {now}: shifted by host-a's clock");
    // host-a's clock is indeed an hour ahead of the engine's (its heartbeat says so).
    let hb = engine.cmd(&["GET", &engine.keys("marie").heartbeat("host-a")]);
    let redis::Value::BulkString(hb) = hb else { panic!("no heartbeat of host-a") };
    let hb: serde_json::Value = serde_json::from_slice(&hb).expect("json");
    let ahead = (hb["timestamp"].as_f64().expect("timestamp") * 1000.0) as i64 - now;
    assert!(ahead > HOUR_MS / 2, "faketime did not move host-a's clock: {ahead} ms");
    wa.stop();
    // host-b, an hour behind, promotes it when the engine's clock says so, and runs it.
    let _wb = b.start(&engine, "marie", &[&env[..], &clock("-1h")[..]].concat());
    let r = engine.wait_results("marie", &["c".to_string()]).remove(0);
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(2)), "{r}");
    assert_eq!(b.runs(), ["c 2"], "host-b ran the retry");
}
