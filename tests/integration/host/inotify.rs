//! inotify under stress: a queue overflow, a queue folder deleted under the worker, and the
//! watch limit reached. Nothing queued is missed; a limit is named in the error.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::sys::{self, Mount, Sysctl};
use crate::support::util::*;

/// A burst far larger than the kernel's event queue (lowered to 64 for the worker's inotify
/// instance): IN_Q_OVERFLOW makes the worker rescan, and every task runs exactly once.
#[test]
fn overflow_in_a_burst_rescans_and_runs_every_task_once() {
    const N: usize = 20_000;
    if !sys::root_or_skip("overflow_in_a_burst") {
        return;
    }
    let root = Root::new();
    // On tmpfs: the test is about events, not about the disk's fsync rate.
    let _fs = Mount::tmpfs(root.path(), "512m");
    let log = root.path().join("ran.log");
    let agent = sys::counting_agent(&log);
    let env = [
        (agent[0].0, agent[0].1.as_str()),
        (agent[1].0, agent[1].1.as_str()),
        ("MAX_CONCURRENT_TASKS", "8"),
        ("LOG_LEVEL", "WARNING"),
    ];
    let w = {
        // The limit is read when an inotify instance is made: only the worker's gets it.
        let held = sys::exclusive();
        let _small = Sysctl::set(&held, "fs.inotify.max_queued_events", "64");
        Worker::start(&root, "burst", &env)
    };
    let q = root.queue("burst");
    let started = Instant::now();
    for i in 0..N {
        let tmp = q.join(format!(".b-{i}.tmp"));
        fs::write(&tmp, format!(r#"{{"task_id":"b-{i:05}","description":"x"}}"#)).expect("write");
        fs::rename(&tmp, q.join(format!("b-{i:05}.json"))).expect("rename");
    }
    let results = root.path().join("results/burst");
    sys::wait_long("every result", Duration::from_secs(600), || {
        (fs::read_dir(&results).map(|d| d.count()).unwrap_or(0) >= N).then_some(())
    });
    eprintln!("{N} tasks in {:?}", started.elapsed());
    let log_text = w.log_text();
    assert!(log_text.contains("change notifications were lost"), "no overflow seen; log:\n{log_text}");
    let runs = sys::runs(&log);
    assert_eq!(runs.len(), N, "every task ran");
    let twice: Vec<_> = runs.iter().filter(|(_, r)| r.len() != 1).take(5).collect();
    assert!(twice.is_empty(), "tasks run more than once: {twice:?}");
    assert_eq!(names(&results).len(), N);
    assert!(names(&q).is_empty() && names(&root.inflight("burst")).is_empty(), "queue drained");
}

/// The queue folder removed (or moved away) and made again under a running worker: tasks
/// dropped into the new folder still run.
#[test]
fn queue_folder_deleted_and_recreated() {
    let root = Root::new();
    let w = Worker::start(&root, "gone", &[]);
    root.submit("gone", "before", "hello");
    root.wait_result("gone", "before");
    let q = root.queue("gone");
    // The worker makes its folders again as they go (the in-flight, the cancel requests'), so
    // a removal can race with it (ENOTEMPTY): as `rm -r` typed again would, try until it is gone.
    wait_for("the queue removed", || match fs::remove_dir_all(&q) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => None,
        _ => Some(()),
    });
    fs::create_dir_all(&q).expect("mkdir queue");
    root.submit("gone", "after-delete", "hello");
    assert_eq!(root.wait_result("gone", "after-delete")["status"], "completed");
    // Moved away rather than removed: the old folder keeps its watch until it is dropped.
    wait_for("the in-flight folder again", || q.join(".inflight").is_dir().then_some(()));
    fs::rename(&q, root.path().join("tasks/gone.old")).expect("mv queue");
    fs::create_dir_all(&q).expect("mkdir queue");
    root.submit("gone", "after-move", "hello");
    assert_eq!(root.wait_result("gone", "after-move")["status"], "completed");
    let log = w.log_text();
    assert!(log.contains("change notifications were lost"), "{log}");
}

/// Out of inotify watches (or instances): the worker stops at start-up with an error that
/// names the sysctl to raise. The limit is lowered in a user namespace of the worker's own
/// (`user.max_inotify_*` are per namespace), so the machine's values are never touched.
#[test]
fn inotify_limits_reached_name_the_sysctl() {
    if !sys::have_or_skip("unshare", "inotify_limits_reached") {
        return;
    }
    for (limit, sysctl) in [
        ("max_inotify_watches", "fs.inotify.max_user_watches"),
        ("max_inotify_instances", "fs.inotify.max_user_instances"),
    ] {
        let root = Root::new();
        let script = format!("echo 0 > /proc/sys/user/{limit} && exec \"$0\" \"$@\"");
        let cmd = command(&root, "limited", &[]);
        let out = Command::new("unshare")
            .args(["--user", "--map-root-user", "sh", "-c", &script])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .stdin(Stdio::null())
            .output()
            .expect("unshare");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed") || stderr.contains("Operation not permitted") {
            eprintln!("SKIP inotify_limits_reached: no user namespaces here: {stderr}");
            return;
        }
        assert!(!out.status.success(), "{limit}: started anyway: {stderr}");
        assert_eq!(out.status.code(), Some(70), "{limit}: a resource, not a bad setting: {stderr}");
        assert!(stderr.contains(sysctl), "{limit}: the error names {sysctl}: {stderr}");
    }
}

/// `rm -rf` of every folder of the spool under a running worker: it re-creates what it
/// writes to (results, receipts, heartbeats, dead letters) as it needs them, and goes on.
#[test]
fn a_removed_spool_comes_back() {
    let root = Root::new();
    let w = Worker::start(&root, "gone", &[("MAX_RETRIES", "0"), ("HEARTBEAT_INTERVAL", "0.2")]);
    root.submit("gone", "before", "hello");
    root.wait_result("gone", "before");
    rm_rf(&root, &["tasks", "results", "triggers", "heartbeats", "dlq"]);
    root.submit("gone", "after", "hello");
    assert_eq!(root.wait_result("gone", "after")["status"], "completed");
    assert!(root.path().join("triggers/gone/after.json").is_file(), "its receipt");
    root.submit("gone", "bad", "fail");
    assert_eq!(root.wait_result("gone", "bad")["status"], "failed");
    wait_for("its dead letter", || (root.dlq("gone").len() == 1).then_some(()));
    let pid = w.pid();
    root.wait_heartbeat("gone", "a heartbeat again", |h| h["pid"] == pid);
    let log = w.log_text();
    assert!(log.contains("re-created"), "{log}");
}
