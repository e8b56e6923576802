//! Exit statuses: a bad setting (78, one line naming it), a second listener on one spool
//! (75), a damaged state file (78); `--check-config` shows the listener's own settings.

use std::process::Stdio;

use super::*;

fn run(root: &Root, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    listener_command(root, env)
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .expect("run")
}

#[test]
fn a_bad_value_stops_it_with_78_and_one_line() {
    let root = Root::new();
    for (var, value) in
        [("HEARTBEAT_STALE_AFTER", "-1"), ("WORKERS", "a,b/c"), ("ORCHESTRATOR_NOTIFY_TIMEOUT", "soon")]
    {
        let out = run(&root, &[(var, value)], &[]);
        assert_eq!(out.status.code(), Some(78), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("orchestrator-listener: {var}=")), "{err}");
    }
    let out = run(&root, &[], &["--workers", "x y"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(from flag --workers)"));
}

#[test]
fn check_config_prints_its_settings_and_where_they_come_from() {
    let root = Root::new();
    let out = run(&root, &[("HEARTBEAT_STALE_AFTER", "30")], &["--check-config", "--workers", "marie,anga"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("WORKERS=marie,anga") && l.ends_with("# flag --workers")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("HEARTBEAT_STALE_AFTER=30") && l.ends_with("# environment")),
        "{text}"
    );
    assert!(!text.contains("CLAUDE_COMMAND"), "{text}");
}

#[test]
fn a_second_listener_on_one_spool_exits_75() {
    let root = Root::new();
    let (_l, _) = start(&root, &[]);
    let out = run(&root, &[], &[]);
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
}

#[test]
fn a_damaged_state_file_stops_it_with_78() {
    let root = Root::new();
    let dir = root.path().join("listener");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("state.json"), "{\"version\":1,").expect("write");
    let out = run(&root, &[], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
}
