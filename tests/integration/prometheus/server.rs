//! A real Prometheus (Debian's `prometheus` 2.42) scrapes the listener and two workers'
//! own endpoints (a double scrape, on purpose) every second while they work. Every
//! expression of the dashboard, every alert's measure and every query of
//! docs/monitoring.md must then return data; the dashboard must count a worker served by two
//! targets once; every rule must evaluate, and a dead letter must fire its alert once.

use std::fs;

use serde_json::Value;

use super::api::Prometheus;
use super::rules::alert_names;
use super::*;
use crate::support::util::*;

/// Metrics on a TCP port the kernel chooses, heartbeats twice a second.
const WORKER: &[(&str, &str)] = &[
    ("ENABLE_METRICS", "true"),
    ("METRICS_LISTEN", "127.0.0.1:0"),
    ("HEARTBEAT_INTERVAL", "0.5"),
    ("MAX_RETRIES", "0"),
    ("CIRCUIT_BREAKER_THRESHOLD", "100"),
];

/// The address a worker's heartbeat says its endpoint has.
fn worker_address(root: &Root, name: &str) -> String {
    let hb =
        root.wait_heartbeat(name, "a heartbeat with the metrics address", |h| h["metrics"][0].is_string());
    hb["metrics"][0].as_str().unwrap_or_default().to_string()
}

/// The address of the listener's endpoint, from its `ready` log entry.
fn listener_address(l: &Worker) -> String {
    wait_for("the listener's ready entry", || {
        l.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|v| v["message"] == "ready")
            .and_then(|v| v["metrics"].as_str().map(str::to_string))
    })
}

fn config(listener: &str, workers: &[String], rules: &str) -> String {
    let targets = workers.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", ");
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - '{rules}'\n\
         scrape_configs:\n  - job_name: listener\n    static_configs:\n      - targets: ['{listener}']\n\
         \x20 - job_name: worker\n    static_configs:\n      - targets: [{targets}]\n"
    )
}

/// Polls `expr` until it returns a sample whose value is a number; returns the samples.
fn wait_data(p: &Prometheus, what: &str, expr: &str) -> Vec<(Value, f64)> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let samples = p.query(expr);
        if samples.iter().any(|(_, v)| v.is_finite()) {
            return samples;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: no data for {expr}: {samples:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn prometheus_evaluates_every_expression_of_the_dashboard_rules_and_docs() {
    let Some(binary) = tool("prometheus", "prometheus_evaluates_every_expression") else { return };
    let root = Root::new();
    let listen =
        [("ENABLE_METRICS", "true"), ("METRICS_LISTEN", "127.0.0.1:0"), ("HEARTBEAT_STALE_AFTER", "3600")];
    let listener = Worker::spawn_command(&root, "listener", listener_command(&root, &listen));
    listener.wait_notify("READY=1");
    let _marie = Worker::start(&root, "marie", &[WORKER, &[("MAX_CONCURRENT_TASKS", "2")]].concat());
    let _anga = Worker::start(&root, "anga", &[WORKER, &[("MAX_CONCURRENT_TASKS", "1")]].concat());
    let _fabien = Worker::start(&root, "fabien", &[WORKER, &[("ENABLE_METRICS", "false")]].concat());
    let workers = [worker_address(&root, "marie"), worker_address(&root, "anga")];
    let cfg = root.path().join("prometheus.yml");
    fs::write(&cfg, config(&listener_address(&listener), &workers, &repo_file(RULES).display().to_string()))
        .expect("write prometheus.yml");
    let p = Prometheus::start(&binary, &cfg, root.path());
    wait_for("three targets up", || p.query("sum(up)").first().is_some_and(|s| s.1 == 3.0).then_some(()));
    // Scraped at 0 first, so that the dead letter below is an increase.
    wait_data(&p, "fabien known", "watcher_dead_letters_total{worker=\"fabien\",reason=\"exit_code\"}");

    // The load: a busy worker, a queue of 3 behind a task that hangs, a dead letter.
    for i in 0..12 {
        root.submit("marie", &format!("m{i}"), "sleep 0.3");
    }
    root.submit("anga", "a-hang", "hang");
    root.wait_heartbeat("anga", "anga running its task", |h| h["active_tasks"] == 1);
    for i in 0..3 {
        root.submit("anga", &format!("a{i}"), "hello");
    }
    root.submit("fabien", "f-fail", "fail 3");

    // Both targets serve anga's queue of 3: a plain sum says 6, the dashboard says 3.
    wait_for("anga's queue of 3 scraped from both targets", || {
        p.query("sum(watcher_task_queue_size{worker=\"anga\"})")
            .first()
            .is_some_and(|s| s.1 == 6.0)
            .then_some(())
    });
    let queued = dashboard_exprs("1m")
        .into_iter()
        .find(|(title, _, _)| title == "Tasks queued")
        .map(|(_, _, e)| e.replace("worker=~\".*\"", "worker=~\"anga\""))
        .expect("the Tasks queued panel");
    assert_eq!(p.query(&queued).first().map(|s| s.1), Some(3.0), "{queued}");

    for (title, r, expr) in dashboard_exprs("1m") {
        wait_data(&p, &format!("dashboard panel {title}/{r}"), &expr);
    }
    let groups = p.api("/api/v1/rules");
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let names: Vec<String> =
        rules.iter().map(|r| r["name"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(names, alert_names(), "the rules Prometheus loaded");
    for rule in &rules {
        let (name, query) = (&rule["name"], rule["query"].as_str().expect("query"));
        wait_data(&p, &format!("alert {name}"), &measure(query));
    }
    for expr in docs_exprs() {
        wait_data(&p, DOCS, &expr);
    }
    wait_for("every rule evaluated without error", || {
        let data = p.api("/api/v1/rules");
        let all: Vec<Value> = data["groups"][0]["rules"].as_array().cloned().unwrap_or_default();
        all.iter().all(|r| r["health"] == "ok").then_some(())
    });
    // The dead letter fires its alert for fabien alone: marie's and anga's counters, served
    // by two targets, moved by nothing that fires.
    let alerts = wait_for("WorkerWatcherDeadLetters firing", || {
        let data = p.api("/api/v1/alerts");
        let firing: Vec<Value> = data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == "WorkerWatcherDeadLetters" && a["state"] == "firing")
            .cloned()
            .collect();
        (!firing.is_empty()).then_some(firing)
    });
    let workers: Vec<&Value> = alerts.iter().map(|a| &a["labels"]["worker"]).collect();
    assert_eq!(workers, [&Value::from("fabien")], "{alerts:?}\n{}", p.log_text());
}
