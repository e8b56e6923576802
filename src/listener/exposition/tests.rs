use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::listener::health::{judge, CircuitReason, HeartbeatReading, PauseReason};
use crate::metrics::{WorkerMetrics, WORKER_ONLY};

/// Family name → (type, label names) of a text exposition.
fn shapes(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            out.insert(name.to_string(), (kind.to_string(), BTreeSet::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').expect("a sample").0;
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|f| out.get(*f).is_some_and(|(k, _)| k == "histogram"))
                .unwrap_or(name);
            let (_, names) = out.get_mut(family).unwrap_or_else(|| panic!("{name} before its # TYPE"));
            for pair in labels.trim_end_matches('}').split("\",").filter(|p| !p.is_empty()) {
                let label = pair.split_once('=').expect("label=value").0;
                if label != "le" {
                    names.insert(label.to_string());
                }
            }
        }
    }
    out
}

/// The heartbeat of a spool of one host (the folders), half a second old.
fn one_host<'a>(beat: &'a Beat, verdict: &Verdict) -> Vec<HostView<'a>> {
    vec![HostView { host: "", beat: Some(beat), age: Some(0.5), up: verdict.up }]
}

/// A listener's view of a worker whose heartbeat and results have every field.
fn full_view_text() -> String {
    let mut counts = Counts { completed: 3, failed: 1, ..Counts::default() };
    counts.failed_by_reason.insert("timeout".into(), 1);
    counts.duration.observe(1.0);
    let now = crate::sys::clock::now_f64();
    let beat = Beat {
        timestamp: now,
        status: "busy".into(),
        queue_size: 4,
        version: "0.1.0".into(),
        oldest_queued_at: Some(now - 5.0),
        ..Beat::default()
    };
    let verdict = judge(&HeartbeatReading::Beat(beat.clone()), true, now, 0.0, None);
    let views =
        [WorkerView { name: "marie", counts: &counts, hosts: one_host(&beat, &verdict), verdict: &verdict }];
    String::from_utf8(encode(derived(&views)).expect("encode")).expect("utf-8")
}

#[test]
fn the_listener_serves_the_workers_families_under_their_names_labels_and_types() {
    let worker = WorkerMetrics::new("marie").expect("metrics");
    let worker = shapes(&String::from_utf8(worker.encode().expect("encode")).expect("utf-8"));
    let listener = shapes(&full_view_text());
    for (name, shape) in &listener {
        if name.starts_with("watcher_listener_") {
            continue;
        }
        let Some(theirs) = worker.get(name) else {
            panic!("the listener serves {name}, which a worker does not: name it watcher_listener_*")
        };
        assert_eq!(shape, theirs, "{name}: (type, labels) on the listener vs on a worker");
    }
    for name in worker.keys() {
        if !WORKER_ONLY.iter().any(|w| name == w || (w.ends_with('_') && name.starts_with(w))) {
            assert!(listener.contains_key(name), "a worker serves {name}, the listener does not");
        }
    }
}

#[test]
fn every_worker_has_every_family_once() {
    let mut counts = Counts { completed: 3, ..Counts::default() };
    counts.duration.observe(1.0);
    let beat = Beat {
        timestamp: crate::sys::clock::now_f64(),
        status: "idle".into(),
        queue_size: 4,
        ..Beat::default()
    };
    let verdict = judge(&HeartbeatReading::Beat(beat.clone()), true, crate::sys::clock::now_f64(), 0.0, None);
    let none = judge(&HeartbeatReading::Missing, false, 0.0, 0.0, None);
    let views = [
        WorkerView { name: "marie", counts: &counts, hosts: one_host(&beat, &verdict), verdict: &verdict },
        WorkerView { name: "anga", counts: &Counts::default(), hosts: Vec::new(), verdict: &none },
    ];
    let text = String::from_utf8(encode(derived(&views)).expect("encode")).expect("utf-8");
    assert_eq!(text.matches("# TYPE watcher_tasks_processed_total counter").count(), 1);
    assert!(
        text.contains("watcher_tasks_processed_total{worker=\"marie\",status=\"completed\"} 3"),
        "{text}"
    );
    assert!(text.contains("watcher_tasks_processed_total{worker=\"anga\",status=\"failed\"} 0"));
    assert!(text.contains("watcher_task_queue_size{worker=\"marie\"} 4"));
    assert!(!text.contains("watcher_task_queue_size{worker=\"anga\"}"), "no heartbeat, no gauge");
    assert!(text.contains("watcher_worker_up{worker=\"anga\"} 0"));
    assert!(text.contains("watcher_task_duration_seconds_bucket{worker=\"marie\",le=\"1\"} 1"), "{text}");
    assert!(!text.contains("reason=\"other\""), "other only once it happened");
}

#[test]
fn heartbeat_gauges_tell_pauses_credentials_and_the_oldest_task() {
    let now = crate::sys::clock::now_f64();
    let text = |beat: Beat| {
        let verdict = judge(&HeartbeatReading::Beat(beat.clone()), true, now, 0.0, None);
        let views = [WorkerView {
            name: "m",
            counts: &Counts::default(),
            hosts: one_host(&beat, &verdict),
            verdict: &verdict,
        }];
        String::from_utf8(encode(derived(&views)).expect("encode")).expect("utf-8")
    };
    let beat = |status: &str| Beat { timestamp: now, status: status.into(), ..Beat::default() };
    let t = text(Beat {
        circuit_state: "open".into(),
        circuit_reason: Some(CircuitReason::Credential),
        paused_until: Some(2e9),
        paused_reason: Some(PauseReason::RateLimited),
        queue_size: 2,
        oldest_queued_at: Some(now - 100.0),
        ..beat("circuit_open")
    });
    assert!(t.contains("watcher_credential_fault{worker=\"m\"} 1"), "{t}");
    assert!(t.contains("watcher_rate_limited_until_seconds{worker=\"m\"} 2000000000"), "{t}");
    assert!(t.contains("watcher_spend_cap_until_seconds{worker=\"m\"} 0"), "{t}");
    let age = t.lines().find_map(|l| l.strip_prefix("watcher_oldest_queued_task_age_seconds{worker=\"m\"} "));
    assert!(age.and_then(|a| a.parse::<f64>().ok()).is_some_and(|a| a >= 100.0), "{t}");
    // An older worker's heartbeat: the pause in its status, no age for a queue it does not date.
    let t = text(Beat { paused_until: Some(3e9), queue_size: 2, ..beat("budget_exhausted") });
    assert!(t.contains("watcher_spend_cap_until_seconds{worker=\"m\"} 3000000000"), "{t}");
    assert!(t.contains("watcher_credential_fault{worker=\"m\"} 0"), "{t}");
    assert!(!t.contains("watcher_oldest_queued_task_age_seconds{"), "{t}");
    let t = text(Beat {
        circuit_state: "open".into(),
        circuit_reason: Some(CircuitReason::Failures),
        ..beat("idle")
    });
    assert!(t.contains("watcher_credential_fault{worker=\"m\"} 0"), "{t}");
    assert!(t.contains("watcher_oldest_queued_task_age_seconds{worker=\"m\"} 0"), "{t}");
}

/// A worker on two hosts of a shared engine: host-a fresh and running 2 tasks, host-b's
/// heartbeat stale.
fn two_hosts_text() -> String {
    let mut counts = Counts { completed: 5, ..Counts::default() };
    counts.duration.observe(1.0);
    let now = crate::sys::clock::now_f64();
    let beat = |active: u64| Beat {
        timestamp: now,
        status: "busy".into(),
        active_tasks: active,
        max_concurrent: 4,
        version: "0.1.0".into(),
        ..Beat::default()
    };
    let (a, b) = (beat(2), beat(1));
    let verdict = judge(&HeartbeatReading::Beat(a.clone()), true, now, 0.5, None);
    let hosts = vec![
        HostView { host: "host-a", beat: Some(&a), age: Some(0.5), up: true },
        HostView { host: "host-b", beat: Some(&b), age: Some(100.0), up: false },
    ];
    let views = [WorkerView { name: "marie", counts: &counts, hosts, verdict: &verdict }];
    String::from_utf8(encode(derived(&views)).expect("encode")).expect("utf-8")
}

#[test]
fn each_host_of_a_shared_engine_has_its_heartbeat_series_labelled_host() {
    let t = two_hosts_text();
    for (series, value) in [
        ("watcher_worker_up{worker=\"marie\",host=\"host-a\"}", "1"),
        ("watcher_worker_up{worker=\"marie\",host=\"host-b\"}", "0"),
        ("watcher_heartbeat_age_seconds{worker=\"marie\",host=\"host-a\"}", "0.5"),
        ("watcher_heartbeat_age_seconds{worker=\"marie\",host=\"host-b\"}", "100"),
        ("watcher_active_tasks{worker=\"marie\",host=\"host-a\"}", "2"),
        ("watcher_active_tasks{worker=\"marie\",host=\"host-b\"}", "1"),
        ("watcher_max_concurrent_tasks{worker=\"marie\",host=\"host-b\"}", "4"),
        ("watcher_build_info{worker=\"marie\",host=\"host-a\",version=\"0.1.0\"}", "1"),
        // The worker's own: its counts and the listener's verdict, once, without a host.
        ("watcher_healthy{worker=\"marie\"}", "1"),
        ("watcher_tasks_processed_total{worker=\"marie\",status=\"completed\"}", "5"),
    ] {
        assert!(t.lines().any(|l| l == format!("{series} {value}")), "{series} {value} in:\n{t}");
    }
    assert!(!t.contains("watcher_worker_up{worker=\"marie\"}"), "no host-less up beside the hosts'");
    for family in ["watcher_tasks_processed_total", "watcher_healthy", "watcher_task_duration_seconds"] {
        assert!(
            t.lines().filter(|l| l.starts_with(family)).all(|l| !l.contains("host=")),
            "{family} is the worker's: {t}"
        );
    }
    assert_eq!(t.matches("# TYPE watcher_worker_up gauge").count(), 1);
    // The labels are a worker endpoint's, plus `host`.
    let worker = WorkerMetrics::new("marie").expect("metrics");
    let worker = shapes(&String::from_utf8(worker.encode().expect("encode")).expect("utf-8"));
    for (name, (kind, mut labels)) in shapes(&t) {
        if !name.starts_with("watcher_listener_") {
            labels.remove("host");
            assert_eq!(Some(&(kind, labels)), worker.get(&name), "{name}");
        }
    }
}

#[test]
fn a_worker_whose_every_host_is_gone_is_down_without_a_host_label() {
    let none = judge(&HeartbeatReading::Missing, true, 0.0, 0.0, None);
    let views = [WorkerView { name: "marie", counts: &Counts::default(), hosts: Vec::new(), verdict: &none }];
    let t = String::from_utf8(encode(derived(&views)).expect("encode")).expect("utf-8");
    assert!(t.lines().any(|l| l == "watcher_worker_up{worker=\"marie\"} 0"), "{t}");
    assert!(t.contains("watcher_healthy{worker=\"marie\"} 0"), "{t}");
    assert!(!t.contains("host="), "{t}");
}

#[test]
fn the_one_host_of_the_folders_has_no_host_label() {
    let t = full_view_text();
    assert!(!t.contains("host="), "the folders' series are as they always were:\n{t}");
    assert!(t.lines().any(|l| l == "watcher_worker_up{worker=\"marie\"} 1"), "{t}");
}
