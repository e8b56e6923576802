//! What the fault alerts read, from both endpoints: a credential fault and a usage limit
//! recorded from the real Claude CLI (tests/fixtures/claude) show on the worker's own
//! endpoint and on the listener's, under the same series.

use crate::listener::{start, FAST_WORKER};
use crate::support::scrape::{Samples, Target};
use crate::support::util::*;

/// Starts `name` with metrics on a unix socket in the root; its target.
fn worker(root: &Root, name: &str, env: &[(&str, &str)]) -> (Worker, Target) {
    let sock = root.path().join(format!("{name}.metrics.sock"));
    let listen = sock.display().to_string();
    let mut all = FAST_WORKER.to_vec();
    all.extend([("ENABLE_METRICS", "true"), ("METRICS_LISTEN", listen.as_str())]);
    all.extend_from_slice(env);
    (Worker::start(root, name, &all), Target::Unix(sock))
}

fn value(s: &Samples, series: &str) -> Option<f64> {
    s.map.get(series).copied()
}

#[test]
fn credential_faults_and_usage_limits_show_on_the_worker_and_on_the_listener() {
    let root = Root::new();
    let (_l, listener) = start(&root, &[]);
    let (_m, marie) = worker(&root, "marie", &[("CIRCUIT_BREAKER_TIMEOUT", "600")]);
    let (_a, anga) = worker(&root, "anga", &[("FAKE_RESET_IN", "3600")]);
    root.submit("marie", "auth", "replay 2.0-not-logged-in.json 1");
    root.submit("anga", "limited", "replay 1.0-usage-limit.json 1");
    let fault = "watcher_credential_fault{worker=\"marie\"}";
    for target in [&marie, &listener] {
        target.scrape_when("the credential fault", |s| value(s, fault) == Some(1.0));
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let until = "watcher_rate_limited_until_seconds{worker=\"anga\"}";
    let on_worker = anga.scrape_when("the pause", |s| value(s, until).is_some_and(|t| t > now));
    let on_listener = listener.scrape_when("the pause", |s| value(s, until).is_some_and(|t| t > now));
    assert_eq!(on_worker.get(until), on_listener.get(until), "one reset time, read from the heartbeat");
    let s = listener.scrape();
    assert_eq!(s.get("watcher_credential_fault{worker=\"anga\"}"), 0.0);
    assert_eq!(s.get("watcher_spend_cap_until_seconds{worker=\"anga\"}"), 0.0);
    assert_eq!(s.get("watcher_worker_up{worker=\"marie\"}"), 1.0);
    assert_eq!(marie.scrape().get("watcher_worker_up{worker=\"marie\"}"), 1.0);
}
