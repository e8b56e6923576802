use std::time::{Duration, Instant};

use mio::{Events, Poll};

use super::*;

fn sh(script: &str, stdin: &[u8]) -> Spec {
    Spec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![("WATCHER_TASK_ID".into(), "t1".into())],
        unset: vec![],
        stdin: stdin.to_vec(),
        max_output: 1 << 20,
    }
}

/// Runs a child to its end with a real poll loop; SIGCHLD is not needed: exit is polled.
fn run(spec: Spec) -> (Exit, Captured) {
    let mut poll = Poll::new().expect("poll");
    let mut child = Child::spawn(spec).expect("spawn");
    child.register(poll.registry(), |p| mio::Token(p as usize)).expect("register");
    let mut events = Events::with_capacity(8);
    let mut scratch = vec![0; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "child did not finish");
        // Other tests of this binary install signal handlers: a signal may cut a wait short.
        match poll.poll(&mut events, Some(Duration::from_millis(20))) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other.expect("poll"),
        }
        for e in events.iter() {
            child.on_ready(Pipe::from_index(e.token().0).expect("pipe"), poll.registry(), &mut scratch);
        }
        if let Some(exit) = child.try_exit().expect("wait") {
            return (exit, child.finish(poll.registry(), &mut scratch));
        }
    }
}

#[test]
fn stdin_in_stdout_and_stderr_out() {
    let (exit, out) = run(sh("cat; echo oops >&2; exit 3", b"the description"));
    assert_eq!(exit, Exit::Code(3));
    assert_eq!(out.stdout, b"the description");
    assert_eq!(out.stderr_tail, "oops\n");
}

#[test]
fn large_stdin_is_fed_without_blocking() {
    let big = vec![b'x'; 1 << 20];
    let (exit, out) = run(sh("wc -c", &big));
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1048576");
}

#[test]
fn agent_that_ignores_stdin_does_not_hurt() {
    let big = vec![b'x'; 1 << 20];
    let (exit, _) = run(sh("exit 0", &big));
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn stdout_is_capped() {
    let mut spec = sh("head -c 100000 /dev/zero", b"");
    spec.max_output = 1000;
    let (_, out) = run(spec);
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_truncated);
    assert_eq!(out.stdout_bytes, 100_000);
}

#[test]
fn daemon_variables_are_stripped_and_group_is_own() {
    std::env::set_var("NOTIFY_SOCKET", "/run/systemd/notify");
    let (_, out) =
        run(sh("echo NS=${NOTIFY_SOCKET:-unset} ID=$WATCHER_TASK_ID; ps -o pgid= -p $$; echo $$", b""));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NS=unset ID=t1"), "{text}");
    let mut lines = text.lines().skip(1);
    let pgid = lines.next().expect("pgid").trim().to_string();
    let pid = lines.next().expect("pid").trim().to_string();
    assert_eq!(pgid, pid, "the agent leads its own process group");
}

#[test]
fn killed_by_signal() {
    let (exit, _) = run(sh("kill -9 $$", b""));
    assert_eq!(exit, Exit::Signal(9));
}

#[test]
fn spawn_error_for_missing_program() {
    let spec = Spec {
        argv: vec!["/nonexistent/agent".into()],
        env: vec![],
        unset: vec![],
        stdin: vec![],
        max_output: 10,
    };
    let err = Child::spawn(spec).expect_err("missing");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn agent_starts_with_no_blocked_or_ignored_signal_and_a_parent_death_signal() {
    // The daemon ignores SIGPIPE (Rust does) and blocks every signal around the clone; what
    // the daemon itself inherited as ignored (SIGQUIT from a shell's `&`) stays so, as with
    // posix_spawn. Read by the agent itself (sh execs grep, which keeps both): sh's own
    // status would race with dash, which blocks every signal around each fork.
    let (exit, out) = run(sh("exec grep -E '^Sig(Blk|Ign):' /proc/self/status", b""));
    assert_eq!(exit, Exit::Code(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    let ignored = text.lines().find_map(|l| l.strip_prefix("SigIgn:\t")).expect("SigIgn");
    let ignored = u64::from_str_radix(ignored.trim(), 16).expect("hex");
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is back to its default: {text}");
    // PR_GET_PDEATHSIG is not in /proc; a helper reads it in the child itself.
    let (exit, out) = run(sh("exec python3 -c 'import ctypes,sys; v=ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)'", b""));
    assert_eq!(exit, Exit::Code(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9");
}

#[test]
fn program_is_looked_up_in_the_agents_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = dir.path().join("my-agent");
    // Written by a short-lived process: an fd open for writing in this one could be inherited
    // by an agent another test starts meanwhile, and exec would fail with ETXTBSY.
    let wrote = std::process::Command::new("/bin/sh")
        .args(["-c", "printf '#!/bin/sh\\necho found\\n' > \"$1\"", "sh"])
        .arg(&agent)
        .status()
        .expect("sh");
    assert!(wrote.success());
    let spec = |mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(mode)).expect("chmod");
        Spec {
            argv: vec!["my-agent".into()],
            env: vec![("PATH".into(), format!("/nonexistent:{}", dir.path().display()).into())],
            unset: vec![],
            stdin: vec![],
            max_output: 100,
        }
    };
    let (exit, out) = run(spec(0o755));
    assert_eq!((exit, out.stdout.as_slice()), (Exit::Code(0), &b"found\n"[..]));
    let err = Child::spawn(spec(0o644)).expect_err("not executable");
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
}
