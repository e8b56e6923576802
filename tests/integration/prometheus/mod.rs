//! Monitoring as shipped: the alert rules checked and unit-tested by promtool, the Grafana
//! dashboard held to Grafana's dashboard model, and a real Prometheus (Debian's
//! `prometheus`) scraping a listener and workers under load, that evaluates every expression
//! of the dashboard, the rules and docs/monitoring.md.
//!
//! Without promtool or prometheus these tests print a SKIP line, except under CI (CI set),
//! where .ci/run installs them and their absence fails.

mod api; // a real Prometheus on a free port, asked through its HTTP API
mod dashboard; // the Grafana dashboard held to Grafana's dashboard model
mod faults; // what the fault alerts read, the same series on both endpoints
mod rules; // the shipped alert rules: promtool check rules and test rules
mod server; // Prometheus scrapes the daemons; every expression returns data

use std::fs;
use std::path::PathBuf;

pub const RULES: &str = "packaging/prometheus/worker-watcher.rules.yml";
pub const DASHBOARD: &str = "packaging/grafana/worker-watcher.json";
pub const DOCS: &str = "docs/monitoring.md";

pub fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn read(rel: &str) -> String {
    fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The path of `program` on PATH; `None` (after a SKIP line naming `test`) when it is not
/// installed and CI is not set. Under CI its absence fails the test.
pub fn tool(program: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is needed under CI (Debian's prometheus package; .ci/run installs it)"
        );
        eprintln!("SKIP {test}: {program} is not installed (apt-get install prometheus)");
    }
    found
}

/// The dashboard's JSON.
pub fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON")
}

/// `(panel title, refId, expr)` of every query of the dashboard, its variables' included
/// (`label_values(M, L)` as `count by (L) (M)`), with Grafana's variables given values:
/// every worker, and a rate interval of `rate_interval`.
pub fn dashboard_exprs(rate_interval: &str) -> Vec<(String, String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            let inner =
                q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).expect("label_values");
            let (metric, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
            let expr = format!("count by ({}) ({})", label.trim(), metric.trim());
            out.push((format!("variable {}", v["name"]), "-".into(), expr));
        }
    }
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr").replace("$worker", ".*");
            let expr = expr.replace("$__rate_interval", rate_interval);
            out.push((
                p["title"].as_str().unwrap_or("?").into(),
                t["refId"].as_str().unwrap_or("?").into(),
                expr,
            ));
        }
    }
    out
}

/// The PromQL of docs/monitoring.md: each paragraph of a ```promql block is one expression
/// (`#` lines are comments).
pub fn docs_exprs() -> Vec<String> {
    let text = read(DOCS);
    let mut out = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```promql") => block = Some(vec![String::new()]),
            (Some(b), "```") => {
                out.extend(b.drain(..).filter(|e| !e.trim().is_empty()));
                block = None;
            }
            (Some(b), "") => b.push(String::new()),
            (Some(b), l) if !l.trim_start().starts_with('#') => {
                let last = b.last_mut().expect("a paragraph");
                last.push(' ');
                last.push_str(l.trim());
            }
            _ => {}
        }
    }
    out.into_iter().map(|e| e.trim().to_string()).collect()
}

/// What an alert measures: its expression without the final comparison with a threshold
/// (`> 1800`, `== 0`, `> time()`), or the argument of `absent(…)`. It must return data on a
/// working host, or the alert could never fire.
pub fn measure(expr: &str) -> String {
    let e = expr.trim();
    if let Some(inner) = e.strip_prefix("absent(").and_then(|r| r.strip_suffix(')')) {
        return inner.to_string();
    }
    for op in [" == ", " != ", " >= ", " <= ", " > ", " < "] {
        if let Some((left, right)) = e.rsplit_once(op) {
            let right = right.trim();
            if right == "time()" || right.parse::<f64>().is_ok() {
                return left.trim().to_string();
            }
        }
    }
    e.to_string()
}

#[test]
fn the_measure_of_an_alert_drops_its_threshold() {
    assert_eq!(measure("max by (worker) (x) == 0"), "max by (worker) (x)");
    assert_eq!(measure("max by (worker) (y) > time()"), "max by (worker) (y)");
    assert_eq!(measure("a * on (worker) (1 - b) > 0"), "a * on (worker) (1 - b)");
    assert_eq!(measure("rate(x[5m])"), "rate(x[5m])", "no threshold, nothing dropped");
    assert_eq!(measure("absent(watcher_listener_build_info)"), "watcher_listener_build_info");
}
