//! The shipped alert rules: `promtool check rules`, and `promtool test rules`, whose cases
//! fire each alert from synthetic series and show where it does not fire.

use std::process::Command;

use super::*;

const RULE_TESTS: &str = "tests/prometheus/rules.test.yml";

/// The alert names of the rules file.
pub fn alert_names() -> Vec<String> {
    read(RULES)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_string())
        .collect()
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool").args(args).current_dir(repo_file(".")).output().expect("run promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

#[test]
fn rules_pass_promtool_check() {
    if tool("promtool", "rules_pass_promtool_check").is_none() {
        return;
    }
    let (ok, said) = promtool(&["check", "rules", RULES]);
    let n = alert_names().len();
    assert!(ok && said.contains(&format!("SUCCESS: {n} rules found")), "promtool check rules: {said}");
}

#[test]
fn each_alert_fires_in_promtool_unit_tests() {
    let tests = read(RULE_TESTS);
    for name in alert_names() {
        let cases = tests.matches(&format!("alertname: {name}\n")).count();
        assert!(cases >= 2, "{RULE_TESTS}: {name} needs a case that fires and one that does not");
    }
    if tool("promtool", "each_alert_fires_in_promtool_unit_tests").is_none() {
        return;
    }
    let (ok, said) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(ok && said.contains("SUCCESS"), "promtool test rules: {said}");
}

#[test]
fn every_rule_counts_a_worker_once_however_many_targets_serve_it() {
    let text = read(RULES);
    let exprs: Vec<&str> =
        text.split("expr:").skip(1).map(|r| r.split("\n        for:").next().unwrap_or(r)).collect();
    assert_eq!(exprs.len(), alert_names().len(), "one expr per alert");
    for e in exprs.iter().filter(|e| e.contains("watcher_") && !e.trim_start().starts_with("absent(")) {
        assert!(
            e.contains("max by (worker"),
            "an expression that does not take max by (worker, …) first: {e}"
        );
    }
}
