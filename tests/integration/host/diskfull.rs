//! The spool's filesystem failing under running tasks: full, remounted read-only, or one folder
//! made unwritable. The worker says so in its log and heartbeat, loses and corrupts nothing,
//! does not spin while stuck, and resumes by itself when the filesystem is back.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::sys::{self, Mount};
use crate::support::util::*;

const TASKS: usize = 12;
/// The unprivileged user the permission test runs the worker as.
const NOBODY: u32 = 65534;

#[derive(Clone, Copy, Debug)]
enum Outage {
    Full,
    ReadOnly,
    /// results/<worker>/ made mode 000, the worker not root.
    NoPermission,
}

impl Outage {
    fn error_text(self) -> &'static str {
        match self {
            Outage::Full => "No space left on device",
            Outage::ReadOnly => "Read-only file system",
            Outage::NoPermission => "Permission denied",
        }
    }
}

#[test]
fn disk_full_under_running_tasks() {
    if sys::root_or_skip("disk_full_under_running_tasks") {
        survive(Outage::Full);
    }
}

#[test]
fn read_only_remount_under_running_tasks() {
    if sys::root_or_skip("read_only_remount_under_running_tasks") {
        survive(Outage::ReadOnly);
    }
}

#[test]
fn unwritable_results_folder_under_running_tasks() {
    if sys::root_or_skip("unwritable_results_folder_under_running_tasks") {
        survive(Outage::NoPermission);
    }
}

/// Fills the filesystem of `dir` with one file; returns its path.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.write_all(&chunk[..4096]);
    path
}

fn survive(outage: Outage) {
    let root = Root::new();
    // The spool on a small tmpfs of its own; heartbeats, the log and the agent's record beside
    // it, so that they show what happens.
    let spool = root.path().join("spool");
    fs::create_dir(&spool).expect("mkdir spool");
    let mount = Mount::tmpfs(&spool, "2m");
    for dir in ["tasks", "results", "triggers", "dlq"] {
        fs::create_dir(spool.join(dir)).expect("mkdir");
        std::os::unix::fs::symlink(spool.join(dir), root.path().join(dir)).expect("symlink");
    }
    let ran = root.path().join("ran.log");
    fs::write(&ran, "").expect("ran.log");
    let args = format!("-c 'echo \"$WATCHER_TASK_ID $PPID\" >> {}; sleep 0.3'", ran.display());
    let env = [
        ("CLAUDE_COMMAND", "/bin/sh"),
        ("CLAUDE_ARGS", args.as_str()),
        ("MAX_CONCURRENT_TASKS", "2"),
        ("HEARTBEAT_INTERVAL", "1"),
    ];
    let w = match outage {
        Outage::NoPermission => {
            fs::create_dir(root.path().join("heartbeats")).expect("mkdir");
            chown_all(root.path(), NOBODY);
            Worker::start_as(&root, "w", &env, NOBODY)
        }
        _ => Worker::start(&root, "w", &env),
    };
    for i in 0..TASKS {
        root.submit("w", &format!("t-{i:02}"), "hello");
    }
    wait_for("the first results", || (root.results("w").len() >= 2).then_some(()));

    let filler = match outage {
        Outage::Full => Some(fill(&spool)),
        Outage::ReadOnly => {
            // EBUSY while a file on it is open for writing: try again.
            wait_for("a read-only remount", || mount.try_remount("ro").then_some(()));
            None
        }
        Outage::NoPermission => {
            fs::set_permissions(spool.join("results/w"), fs::Permissions::from_mode(0o000))
                .expect("chmod 000");
            None
        }
    };
    let text = outage.error_text();
    wait_for("the error in the log", || w.log_text().contains(text).then_some(()));
    let hb = root.wait_heartbeat("w", "last_error in the heartbeat", |h| {
        h["last_error"].as_str().is_some_and(|e| e.contains(text))
    });
    eprintln!("{outage:?}: heartbeat while stuck: {hb}");

    // Stuck, it must not spin: its own CPU time over a few seconds is a small part of them.
    let before = sys::cpu_time(w.pid());
    std::thread::sleep(Duration::from_secs(3));
    let used = sys::cpu_time(w.pid()) - before;
    assert!(used < Duration::from_millis(600), "{outage:?}: {used:?} of CPU in 3 s while stuck");

    match outage {
        Outage::Full => fs::remove_file(filler.expect("filler")).expect("rm filler"),
        Outage::ReadOnly => mount.remount("rw"),
        Outage::NoPermission => {
            fs::set_permissions(spool.join("results/w"), fs::Permissions::from_mode(0o750))
                .expect("chmod back")
        }
    }
    wait_for("every result after the outage", || (root.results("w").len() == TASKS).then_some(()));
    for i in 0..TASKS {
        let r = root.result("w", &format!("t-{i:02}")).expect("a whole, readable result");
        assert_eq!(r["status"], "completed", "{outage:?}: {r}");
    }
    let runs = sys::runs(&ran);
    assert_eq!(runs.len(), TASKS, "{outage:?}: every task ran");
    assert!(runs.values().all(|r| r.len() == 1), "{outage:?}: each task ran once: {runs:?}");
    root.wait_heartbeat("w", "last_error cleared", |h| h.get("last_error").is_none_or(|e| e.is_null()));
    wait_for("queue and in-flight folders empty", || {
        (names(&root.queue("w")).is_empty() && names(&root.inflight("w")).is_empty()).then_some(())
    });
    assert_eq!(sys::temp_files(&spool), Vec::<std::path::PathBuf>::new(), "{outage:?}: temp files left");
    let log = w.log_text();
    assert!(log.contains("writes succeed again"), "{outage:?}: {log}");
    let repeats = log.lines().filter(|l| l.contains(text)).count();
    assert!(repeats <= 12, "{outage:?}: the error is logged {repeats} times, not once per retry:\n{log}");
}

fn chown_all(dir: &Path, uid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success());
}
