//! Network filesystems: writes inotify never sees are found by the timer rescan (on by
//! default where statfs says the queue is remote or FUSE), and workers of one name on two
//! "hosts" (their own LOCK_DIR each) share one spool without running a task twice.

use std::fs;
use std::time::Duration;

use crate::support::sys::{self, Mount};
use crate::support::util::*;

/// The queue seen through bindfs (FUSE): a task written to the folder behind it makes no
/// inotify event on the mount, as another NFS client's write makes none. The worker detects
/// FUSE at start-up, rescans on a timer, and runs it.
#[test]
fn writes_inotify_cannot_see_are_found_by_the_rescan() {
    if !sys::root_or_skip("writes_inotify_cannot_see")
        || !sys::have_or_skip("bindfs", "writes_inotify_cannot_see")
    {
        return;
    }
    let root = Root::new();
    let back = root.path().join("back");
    let mnt = root.path().join("mnt");
    for d in [&back, &mnt] {
        fs::create_dir(d).expect("mkdir");
    }
    let _fuse = Mount::bindfs(&back, &mnt);
    std::os::unix::fs::symlink(&mnt, root.path().join("tasks")).expect("symlink");

    let auto = Worker::start(&root, "auto", &[]);
    let explicit = Worker::start(&root, "explicit", &[("RESCAN_INTERVAL", "1")]);
    for (w, secs) in [(&auto, "5"), (&explicit, "1")] {
        let log = w.log_text();
        let line =
            log.lines().find(|l| l.contains("rescanning it on a timer")).unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("\"filesystem\":\"fuse\""), "{line}");
        assert!(line.contains(&format!("\"rescan_interval_s\":\"{secs}\"")), "{line}");
    }
    for worker in ["auto", "explicit"] {
        // Behind the mount's back: no event reaches the worker.
        let q = back.join(worker);
        fs::write(q.join(".unseen.tmp"), r#"{"description":"hello"}"#).expect("write");
        fs::rename(q.join(".unseen.tmp"), q.join("unseen.json")).expect("rename");
    }
    assert_eq!(root.wait_result("explicit", "unseen")["status"], "completed");
    assert_eq!(root.wait_result("auto", "unseen")["status"], "completed");

    // On a local folder, no timer unless asked for.
    let local = Root::new();
    let w = Worker::start(&local, "local", &[]);
    local.submit("local", "t", "hello");
    local.wait_result("local", "t");
    assert!(!w.log_text().contains("on a timer"), "{}", w.log_text());
}

/// Two workers of one name with their own LOCK_DIR each, as on two hosts mounting one
/// spool: the claim by rename lets only one of them run each task.
#[test]
fn two_hosts_one_spool_each_task_runs_once() {
    const N: usize = 600;
    let root = Root::new();
    let locks = [root.path().join("host-a"), root.path().join("host-b")];
    let ran = root.path().join("ran.log");
    let agent = sys::counting_agent(&ran);
    let env = |lock: &std::path::Path| -> Vec<(&'static str, String)> {
        vec![
            (agent[0].0, agent[0].1.clone()),
            (agent[1].0, agent[1].1.clone()),
            ("MAX_CONCURRENT_TASKS", "4".into()),
            ("LOCK_DIR", lock.display().to_string()),
        ]
    };
    let start = |lock| {
        let e = env(lock);
        let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Worker::start(&root, "shared", &refs)
    };
    let a = start(&locks[0]);
    let b = start(&locks[1]);
    // The same host twice is still refused: the lock is in its LOCK_DIR.
    let e = env(&locks[0]);
    let refs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut third = Worker::spawn(&root, "shared", &refs);
    assert_eq!(third.wait_exit().code(), Some(75), "{}", third.log_text());
    assert!(locks[0].join("shared.lock").exists());

    for i in 0..N {
        root.submit("shared", &format!("s-{i:04}"), "x");
    }
    sys::wait_long("every result", Duration::from_secs(300), || {
        (root.results("shared").len() >= N).then_some(())
    });
    let runs = sys::runs(&ran);
    assert_eq!(runs.len(), N, "every task ran");
    let twice: Vec<_> = runs.iter().filter(|(_, r)| r.len() != 1).take(5).collect();
    assert!(twice.is_empty(), "tasks run more than once: {twice:?}");
    for w in [&a, &b] {
        let pid = w.pid().to_string();
        let mine = runs.values().filter(|r| r[0] == pid).count();
        eprintln!("worker {pid} ran {mine} of {N}");
        assert!(mine > 0, "both workers took tasks");
    }
}
