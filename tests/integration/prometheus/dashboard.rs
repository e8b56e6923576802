//! The Grafana dashboard, held to Grafana's dashboard model (the JSON that Grafana 10 and 11
//! import): schemaVersion, unique panel ids, gridPos inside the 24-column grid and without
//! overlaps, a data source variable that every panel and query uses, refIds, and queries of
//! families that the listener serves, each taken `max by (worker, …)` across targets.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use worker_watcher::metrics::WORKER_ONLY;

/// The data source every panel and query names: the dashboard's variable.
const DATASOURCE: &str = r#"{"type":"prometheus","uid":"${datasource}"}"#;

/// Panel types of Grafana's core that the dashboard may use.
const PANEL_TYPES: &[&str] = &["timeseries", "stat", "state-timeline", "gauge", "bargauge", "table", "row"];

fn datasource() -> Value {
    serde_json::from_str(DATASOURCE).expect("JSON")
}

#[test]
fn dashboard_fits_grafanas_model() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion, a number");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}: Grafana 10 and 11 read 36 to 41");
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty() && u.len() <= 40), "uid of 1 to 40 characters");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "a title");
    assert!(d["time"]["from"].is_string() && d["time"]["to"].is_string(), "a time range");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars.iter().find(|v| v["type"] == "datasource").expect("a data source variable");
    assert_eq!((&ds["name"], &ds["query"]), (&Value::from("datasource"), &Value::from("prometheus")));
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], datasource(), "variable {} uses ${{datasource}}", v["name"]);
    }
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().expect("a panel title");
        assert!(ids.insert(p["id"].as_u64().expect("a numeric id")), "{title}: id used twice");
        let kind = p["type"].as_str().expect("a type");
        assert!(PANEL_TYPES.contains(&kind), "{title}: panel type {kind}");
        assert_eq!(p["datasource"], datasource(), "{title}: data source");
        for (cell, taken) in grid_cells(title, &p["gridPos"]) {
            assert!(cells.insert(cell), "{title} overlaps another panel at {taken:?}");
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            let r = t["refId"].as_str().expect("a refId");
            assert!(!r.is_empty() && r.chars().all(|c| c.is_ascii_uppercase()), "{title}: refId {r}");
            assert!(refs.insert(r), "{title}: refId {r} twice");
            assert_eq!(t["datasource"], datasource(), "{title}/{r}: data source");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}/{r}: expr");
        }
    }
}

/// The grid cells a panel covers, checked against the 24-column grid.
fn grid_cells(title: &str, g: &Value) -> Vec<((u64, u64), (u64, u64))> {
    let n = |k: &str| g[k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}"));
    let (h, w, x, y) = (n("h"), n("w"), n("x"), n("y"));
    assert!(h >= 1 && w >= 1 && x + w <= 24, "{title}: gridPos {g} leaves the 24 columns");
    (y..y + h).flat_map(|row| (x..x + w).map(move |col| ((row, col), (x, y)))).collect()
}

/// The metric names in an expression (`_bucket` etc. folded into their family).
pub fn families_in(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("watcher_"))
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
                .unwrap_or(w)
                .to_string()
        })
        .collect()
}

#[test]
fn dashboard_queries_families_the_listener_serves_and_counts_each_worker_once() {
    let served: BTreeSet<String> = worker_watcher::listener::metric_families().into_iter().collect();
    let mut used = BTreeSet::new();
    for (title, r, expr) in dashboard_exprs("5m") {
        for f in families_in(&expr) {
            assert!(served.contains(&f), "{title}/{r}: {f} is not served by the listener");
            assert!(!WORKER_ONLY.contains(&f.as_str()), "{title}/{r}: {f} is on workers only");
            used.insert(f);
        }
        if r != "-" {
            // Each selector under a max by (worker, …): a worker scraped twice counts once.
            let selectors = expr.matches("watcher_").count();
            assert_eq!(expr.matches("max by (worker").count(), selectors, "{title}/{r}: {expr}");
        }
    }
    for family in [
        "watcher_tasks_processed_total",
        "watcher_tasks_failed_total",
        "watcher_task_queue_size",
        "watcher_worker_up",
        "watcher_oldest_queued_task_age_seconds",
        "watcher_dead_letters_total",
        "watcher_circuit_breaker_state",
        "watcher_credential_fault",
    ] {
        assert!(used.contains(family), "no panel uses {family}");
    }
}
