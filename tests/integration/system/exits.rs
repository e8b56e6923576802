//! Exit statuses mean the same in both daemons: 78 only when an operator must change a
//! setting (the units carry RestartPreventExitStatus=78, so systemd gives up on it); a fault
//! that may pass exits with a status systemd restarts.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::support::util::*;

/// Runs `cmd` in a user namespace of its own whose inotify `limit` is 0 (the machine's
/// values are never touched). `None` where user namespaces are not allowed.
fn with_no_inotify(cmd: Command, limit: &str) -> Option<std::process::Output> {
    let script = format!("echo 0 > /proc/sys/user/{limit} && exec \"$0\" \"$@\"");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c", &script])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unshare failed") || stderr.contains("Operation not permitted") {
        eprintln!("SKIP: no user namespaces here: {stderr}");
        return None;
    }
    Some(out)
}

/// Out of inotify watches or instances is the host's limit, not a setting: the listener
/// exits 70 as the worker does (it exited 78, so systemd never restarted it), with one line
/// naming the sysctl to raise.
#[test]
fn the_listener_out_of_inotify_exits_70_like_the_worker() {
    if !crate::support::sys::have_or_skip("unshare", "the_listener_out_of_inotify") {
        return;
    }
    for (limit, sysctl) in [
        ("max_inotify_watches", "fs.inotify.max_user_watches"),
        ("max_inotify_instances", "fs.inotify.max_user_instances"),
    ] {
        let root = Root::new();
        let Some(out) = with_no_inotify(listener_command(&root, &[]), limit) else { return };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{limit}: a resource, not a bad setting: {stderr}");
        assert!(stderr.contains(sysctl), "{limit}: the error names {sysctl}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

/// An AGENT_PREFLIGHT canary that fails because the agent's service is overloaded is not a
/// configuration error: exit 75, which systemd restarts (it was 78). A canary that fails for
/// good is still 78.
#[test]
fn a_preflight_canary_failing_for_a_passing_reason_exits_75() {
    let root = Root::new();
    let agent = root.path().join("overloaded");
    let answer = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":1,"result":"API Error: 529 {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}","session_id":"s","total_cost_usd":0,"usage":{"input_tokens":1,"output_tokens":0}}"#;
    std::fs::write(&agent, format!("#!/bin/sh\ncat >/dev/null\necho '{answer}'\nexit 1\n")).expect("agent");
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let env = [
        ("CLAUDE_COMMAND", agent.to_str().expect("utf-8")),
        ("CLAUDE_ARGS", ""),
        ("AGENT_PREFLIGHT", "true"),
    ];
    let out = command(&root, "marie", &env).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("AGENT_PREFLIGHT: the canary run failed"), "{stderr}");
    let broken = [("CLAUDE_COMMAND", "/bin/false"), ("AGENT_PREFLIGHT", "true")];
    assert_eq!(command(&root, "marie", &broken).output().expect("run").status.code(), Some(78));
}
