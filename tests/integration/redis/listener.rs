//! The orchestrator-listener on the engine: killed with kill -9 under load, it announces every
//! result exactly once (on the events stream and in its files).

use std::collections::HashMap;
use std::process::{Child, Stdio};

use crate::support::engine::*;
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
