//! ORCHESTRATOR_NOTIFY_COMMAND: run once per event with the event on stdin; a command that
//! fails or hangs is counted and logged, and never holds up the events.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// A script that runs `body` (sh), made executable in the root.
fn script(root: &Root, name: &str, body: &str) -> PathBuf {
    let path = root.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn quoted(p: &Path) -> String {
    shell_words::quote(&p.display().to_string()).into_owned()
}

#[test]
fn the_command_gets_each_event_on_stdin() {
    let root = Root::new();
    let seen = root.path().join("seen");
    std::fs::create_dir(&seen).expect("mkdir");
    let cmd = script(
        &root,
        "wake",
        r#"cat > "$1/$WATCHER_EVENT_ID.json.part" && mv "$1/$WATCHER_EVENT_ID.json.part" "$1/$WATCHER_EVENT_ID.json" && test -f "$WATCHER_EVENT_FILE""#,
    );
    let command = format!("{} {}", quoted(&cmd), quoted(&seen));
    let (_l, target) =
        start(&root, &[("ORCHESTRATOR_NOTIFY_COMMAND", &command), ("ORCHESTRATOR_NOTIFY_CONCURRENCY", "2")]);
    let _m = worker(&root, "marie");
    for i in 0..5 {
        root.submit("marie", &format!("t{i}"), "hello");
    }
    let events = root.wait_events("five events", |e| e.len() >= 5);
    let done = || names(&seen).iter().filter(|n| n.ends_with(".json")).count();
    wait_for("a command run for each", || (done() == events.len()).then_some(()));
    for e in &events {
        let id = e["id"].as_str().expect("id");
        assert_eq!(read_json(&seen.join(format!("{id}.json"))).as_ref(), Some(e), "{id}");
    }
    wait_for("the runs counted", || {
        (target.scrape().get("watcher_listener_notify_commands_total{outcome=\"ok\"}") == 5.0).then_some(())
    });
}

#[test]
fn failing_and_hanging_commands_are_counted_and_hold_up_nothing() {
    let root = Root::new();
    let cmd = script(
        &root,
        "bad",
        r#"case "$WATCHER_TASK_ID" in hang*) exec sleep 3600;; *) echo "no orchestrator" >&2; exit 3;; esac"#,
    );
    let env = [
        ("ORCHESTRATOR_NOTIFY_COMMAND", cmd.to_str().expect("utf-8")),
        ("ORCHESTRATOR_NOTIFY_TIMEOUT", "0.3"),
        ("KILL_GRACE", "0.1"),
        ("ORCHESTRATOR_NOTIFY_CONCURRENCY", "1"),
    ];
    let (l, target) = start(&root, &env);
    let _m = worker(&root, "marie");
    root.submit("marie", "hang-1", "hello");
    root.submit("marie", "fail-1", "hello");
    root.submit("marie", "fail-2", "hello");
    root.wait_events("three events, whatever the commands do", |e| e.len() >= 3);
    wait_for("the outcomes counted", || {
        let s = target.scrape();
        let n = |o: &str| s.get(&format!("watcher_listener_notify_commands_total{{outcome=\"{o}\"}}"));
        (n("timed_out") == 1.0 && n("failed") == 2.0).then_some(())
    });
    let log = l.log_text();
    assert!(log.contains("notify command failed: exit status 3") && log.contains("no orchestrator"), "{log}");
    assert!(log.contains("timed out"), "{log}");
    assert_eq!(target.get("/healthz").status, 200);
}

/// A stall of the listener past a notify command's time limit is not a time-out when the
/// command ended in time: the command stops the listener and exits 0 at once; the listener
/// is let go once the time limit has passed, and counts an `ok`.
#[test]
fn a_stall_of_the_listener_is_not_a_command_time_out() {
    let root = Root::new();
    let stamp = root.path().join("command-started");
    let cmd = script(
        &root,
        "stopper",
        &format!(
            "cat >/dev/null; date +%s.%N > {0}.tmp && mv {0}.tmp {0}; kill -STOP \"$PPID\"",
            quoted(&stamp)
        ),
    );
    let limit = 1.0;
    let env = [
        ("ORCHESTRATOR_NOTIFY_COMMAND", cmd.to_str().expect("utf-8")),
        ("ORCHESTRATOR_NOTIFY_TIMEOUT", "1"),
        ("KILL_GRACE", "0.1"),
    ];
    let (l, target) = start(&root, &env);
    let _m = worker(&root, "marie");
    root.submit("marie", "t1", "hello");
    let started: f64 =
        wait_for("the command to run", || std::fs::read_to_string(&stamp).ok()?.trim().parse().ok());
    wait_for("the deadline to pass", || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        (now > started + limit + 0.5).then_some(())
    });
    l.signal(libc::SIGCONT);
    let outcomes = wait_for("the run counted", || {
        let s = target.scrape();
        let n = |o: &str| s.get(&format!("watcher_listener_notify_commands_total{{outcome=\"{o}\"}}"));
        let (ok, timed_out) = (n("ok"), n("timed_out"));
        (ok + timed_out >= 1.0).then_some((ok, timed_out))
    });
    assert_eq!(outcomes, (1.0, 0.0), "{}", l.log_text());
}

/// Whether `pid` is a live process started for a notify command.
fn a_command_process(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv.starts_with(b"WATCHER_EVENT_ID=")))
}

#[test]
fn what_a_command_leaves_behind_is_killed() {
    let root = Root::new();
    let left = root.path().join("left");
    std::fs::create_dir(&left).expect("mkdir");
    // A daemon as a double fork with setsid makes it: out of the command's group and session.
    let cmd = script(
        &root,
        "escape",
        r#"setsid -f sh -c 'sleep 100000 & echo $! > "$1/$WATCHER_EVENT_ID"' sh "$1" </dev/null >/dev/null 2>&1; cat >/dev/null"#,
    );
    let pids = || -> Vec<i32> {
        names(&left)
            .iter()
            .filter_map(|n| std::fs::read_to_string(left.join(n)).ok()?.trim().parse().ok())
            .collect()
    };
    struct Kill<F: Fn() -> Vec<i32>>(F);
    impl<F: Fn() -> Vec<i32>> Drop for Kill<F> {
        fn drop(&mut self) {
            for pid in (self.0)().into_iter().filter(|p| a_command_process(*p)) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _guard = Kill(pids);
    let command = format!("{} {}", quoted(&cmd), quoted(&left));
    let (_l, _t) = start(&root, &[("ORCHESTRATOR_NOTIFY_COMMAND", &command)]);
    let _m = worker(&root, "marie");
    root.submit("marie", "t1", "hello");
    let first = wait_for("the pid of a process a command left", || pids().first().copied());
    wait_for("it is killed", || (!a_command_process(first)).then_some(()));
}
