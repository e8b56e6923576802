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

#[test]
fn sighup_applies_a_new_notify_command_and_says_what_needs_a_restart() {
    let root = Root::new();
    let env_file = root.path().join("listener.env");
    std::fs::write(&env_file, "# nothing yet\n").expect("env file");
    let sock = root.path().join("listener.metrics.sock");
    let listen = sock.display().to_string();
    let mut cmd = listener_command(
        &root,
        &[("ENABLE_METRICS", "true"), ("METRICS_LISTEN", &listen), ("HEARTBEAT_STALE_AFTER", "3600")],
    );
    cmd.arg("--env-file").arg(&env_file);
    let l = Worker::spawn_command(&root, "listener", cmd);
    l.wait_notify("READY=1");
    let seen = root.path().join("seen");
    std::fs::create_dir(&seen).expect("mkdir");
    let line = format!(
        // Single quotes: the env file substitutes nothing; sh sees $WATCHER_EVENT_ID.
        "ORCHESTRATOR_NOTIFY_COMMAND='sh -c \"cat > {}/$WATCHER_EVENT_ID.json\"'\nWORKERS=marie\n",
        seen.display()
    );
    std::fs::write(&env_file, line).expect("env file");
    l.signal(libc::SIGHUP);
    wait_for("the reload logged", || l.log_text().contains("configuration reloaded").then_some(()));
    assert!(
        l.log_text().contains("applies only at restart") && l.log_text().contains("WORKERS"),
        "{}",
        l.log_text()
    );
    let _m = worker(&root, "marie");
    root.submit("marie", "t1", "hello");
    let events = root.wait_events("the event", |e| !e.is_empty());
    let id = events[0]["id"].as_str().expect("id").to_string();
    wait_for("the new command run", || read_json(&seen.join(format!("{id}.json"))));
    assert!(l.notifications().iter().any(|n| n.contains("RELOADING=1")), "{:?}", l.notifications());
}
