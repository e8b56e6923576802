//! Bad settings stop the daemon at start-up: one line naming the variable, exit status 78.

use crate::support::util::*;

fn fails(env: &[(&str, &str)], args: &[&str]) -> String {
    let root = Root::new();
    let out = command(&root, "marie", env).args(args).output().expect("run");
    exit_78(out)
}

fn fails_as(root: &Root, name: &str, args: &[&str]) -> String {
    exit_78(command(root, name, &[]).args(args).output().expect("run"))
}

fn exit_78(out: std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn bad_values_exit_78_naming_the_variable() {
    assert!(fails(&[("MAX_RETRIES", "abc")], &[])
        .contains("MAX_RETRIES=\"abc\" is invalid: expected a whole number"));
    assert!(fails(&[("TASK_TIMEOUT", "-1")], &[]).contains("TASK_TIMEOUT=\"-1\""));
    assert!(fails(&[("LOG_LEVEL", "LOUD")], &[]).contains("LOG_LEVEL"));
    assert!(fails(&[], &["--max-concurrent", "0"]).contains("(from flag --max-concurrent)"));
    assert!(fails(&[], &["--env-file", "/nonexistent/w.env"]).contains("/nonexistent/w.env"));
}

#[test]
fn unusable_root_exits_78() {
    let out = std::process::Command::new(BIN)
        .args(["marie", "--root", "/proc/version/x"])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TASK_DIR: cannot create"));
}

#[test]
fn check_config_prints_values_and_sources() {
    let root = Root::new();
    std::fs::write(root.path().join(".env"), "MAX_RETRIES=5\n").expect("env");
    let out = command(&root, "marie", &[("TASK_TIMEOUT", "30")])
        .args(["--check-config", "--max-concurrent", "7"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        |name: &str| text.lines().find(|l| l.starts_with(&format!("{name}="))).unwrap_or("").to_string();
    assert!(
        line("MAX_CONCURRENT_TASKS").contains("=7")
            && line("MAX_CONCURRENT_TASKS").ends_with("# flag --max-concurrent")
    );
    assert!(line("TASK_TIMEOUT").ends_with("# environment"));
    assert!(line("MAX_RETRIES").contains("# env file"));
    assert!(line("RETRY_BACKOFF").ends_with("# default"));
    assert!(!root.path().join("tasks").exists(), "--check-config touches nothing");
}

/// An interval too small to be sane (these once made the worker spin at 100-132 % CPU) or
/// too large stops each program at start-up: one line naming the setting, status 78.
/// (`--check-config` loads the settings as a start does, and would exit 0 if they passed.)
#[test]
fn intervals_out_of_range_exit_78_in_every_program() {
    for (var, value) in
        [("HEARTBEAT_INTERVAL", "1e-300"), ("RESCAN_INTERVAL", "1e-9"), ("TASK_TIMEOUT", "1e12")]
    {
        let err = fails(&[(var, value)], &["--check-config"]);
        assert!(err.contains(&format!("{var}={value:?} is invalid: expected ")), "{err}");
        assert!(err.contains("a number of seconds from "), "the range is named: {err}");
    }
    let root = Root::new();
    let out = listener_command(&root, &[("ORCHESTRATOR_NOTIFY_TIMEOUT", "1e-300")])
        .arg("--check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("ORCHESTRATOR_NOTIFY_TIMEOUT=\"1e-300\" is invalid"), "{err}");
    // watcherctl reads the shared settings (ROOT/.env) as the workers do.
    std::fs::write(root.path().join(".env"), "HEARTBEAT_INTERVAL=1e-300\n").expect("env");
    let ran = crate::support::ctl::ctl_with_input(&root, &["status"], "");
    assert_eq!(ran.code, 78, "{ran:?}");
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {ran:?}");
    assert!(ran.stderr.contains("HEARTBEAT_INTERVAL=\"1e-300\" is invalid"), "{ran:?}");
}

/// A worker may not be called `orchestrator` (in any case): its claim receipts would land in
/// `triggers/orchestrator/`, the listener's event folder. Every program refuses it, each with
/// its documented status, before creating anything.
#[test]
fn the_reserved_worker_name_is_refused_everywhere() {
    for name in ["orchestrator", "Orchestrator"] {
        let root = Root::new();
        let err = fails_as(&root, name, &["--check-config"]);
        assert!(err.contains(&format!("worker name {name:?} is reserved")), "{err}");
        let ran = crate::support::ctl::ctl_with_input(&root, &["submit", name, "hello", "--create"], "");
        assert_eq!(ran.code, 2, "{ran:?}");
        assert!(ran.stderr.contains("is reserved"), "{ran:?}");
        assert!(!root.path().join("tasks").join(name).exists(), "no queue made: {ran:?}");
        let out = listener_command(&root, &[("WORKERS", &format!("marie,{name}"))])
            .arg("--check-config")
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(78), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("WORKERS="), "{out:?}");
    }
}
