//! `watcherctl status`: live, stale and stopped workers from their heartbeats.

use serde_json::Value;

use crate::support::ctl::*;
use crate::support::util::*;

fn row<'a>(rows: &'a Value, worker: &str) -> &'a Value {
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["worker"] == worker))
        .unwrap_or_else(|| panic!("no row for {worker}: {rows}"))
}

#[test]
fn status_shows_a_live_and_a_stale_worker() {
    let root = Root::new();
    let mut live = Worker::start(&root, "marie", &[("MAX_CONCURRENT_TASKS", "2")]);
    let mut dead = Worker::start(&root, "anga", &[("HEARTBEAT_INTERVAL", "0.1")]);
    root.wait_heartbeat("anga", "anga's heartbeat", |_| true);
    dead.kill9();
    ctl(&root, &["submit", "fabien", "x", "--create"]).expect(0);
    // The dead worker's heartbeat gets older than three of its intervals.
    let rows = wait_for("anga stale", || {
        let rows = ctl(&root, &["status", "--json"]).expect(0).json();
        (row(&rows, "anga")["stale"] == true).then_some(rows)
    });
    let marie = row(&rows, "marie");
    assert_eq!((marie["state"].as_str(), marie["stale"].as_bool()), (Some("idle"), Some(false)), "{marie}");
    assert_eq!(marie["healthy"], true);
    assert_eq!(marie["heartbeat"]["max_concurrent"], 2);
    assert_eq!(row(&rows, "anga")["healthy"], false);
    let fabien = row(&rows, "fabien");
    assert_eq!((fabien["state"].as_str(), fabien["queued"].as_u64()), (Some("never started"), Some(1)));

    let text = ctl(&root, &["status"]).expect(0).stdout;
    let line = |w: &str| {
        text.lines().find(|l| l.starts_with(w)).unwrap_or_else(|| panic!("{w}: {text}")).to_string()
    };
    assert!(text.starts_with("WORKER  STATE "), "{text}");
    assert!(line("anga").contains(" STALE "), "{text}");
    assert!(!line("marie").contains("STALE") && line("marie").contains(" 0/2 "), "{text}");
    ctl(&root, &["status", "--check"]).expect(1);
    ctl(&root, &["status", "--check", "marie"]).expect(0);
    ctl(&root, &["status", "nosuch"]).expect(69);

    // A worker that stopped says so; it is not healthy, but not stale either.
    assert!(live.stop().success());
    let rows = ctl(&root, &["status", "--json", "marie"]).expect(0).json();
    let marie = row(&rows, "marie");
    assert_eq!((marie["state"].as_str(), marie["stale"].as_bool()), (Some("stopped"), Some(false)));
    ctl(&root, &["status", "--check", "marie"]).expect(1);
}
