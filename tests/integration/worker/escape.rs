//! An agent's descendants that escape its process group (setsid, double fork) do not outlive
//! its run: not its end, not its time-out, not the worker's stop. Outside a delegated cgroup
//! the worker is their subreaper and kills them; in one, each run has a cgroup of its own,
//! killed whole at the end (tests/system/suite.sh checks that under systemd itself).

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::util::*;

/// Kills whatever a failed test left of `worker`'s agents (an escaped sleep lives for days).
struct Leftovers<'a>(&'a Root, &'static str);

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        for pid in agents_of(self.0, self.1) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The escaped process of task `id`, once it has written its pid.
fn escapee(root: &Root, id: &str) -> i32 {
    let file = root.state_dir().join(format!("{id}.escaped"));
    wait_for("the escaped process's pid", || fs::read_to_string(&file).ok()?.trim().parse().ok())
}

fn none_left(root: &Root, worker: &str) {
    wait_for("no process of the agent left", || agents_of(root, worker).is_empty().then_some(()));
}

#[test]
fn escaped_process_is_killed_at_the_end_of_its_run() {
    let root = Root::new();
    let _guard = Leftovers(&root, "escw");
    let _w = Worker::start(&root, "escw", &[]);
    root.submit("escw", "e1", "escape");
    assert_eq!(root.wait_result("escw", "e1")["status"], "completed");
    escapee(&root, "e1");
    none_left(&root, "escw");
}

#[test]
fn escaped_process_is_killed_at_the_time_out() {
    let root = Root::new();
    let _guard = Leftovers(&root, "esctw");
    let env = [("TASK_TIMEOUT", "1"), ("KILL_GRACE", "0.5"), ("MAX_RETRIES", "0")];
    let _w = Worker::start(&root, "esctw", &env);
    root.submit("esctw", "t1", "escape hang");
    let pid = escapee(&root, "t1");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the escaped process runs with its agent");
    assert_eq!(root.wait_result("esctw", "t1")["reason"], "timeout");
    none_left(&root, "esctw");
}

#[test]
fn escaped_process_is_killed_when_the_worker_stops() {
    let root = Root::new();
    let _guard = Leftovers(&root, "escsw");
    let mut w = Worker::start(&root, "escsw", &[("SHUTDOWN_GRACE", "0"), ("KILL_GRACE", "0.5")]);
    root.submit("escsw", "s1", "escape sleep 600");
    escapee(&root, "s1");
    assert!(w.stop().success(), "{}", w.log_text());
    none_left(&root, "escsw");
}

/// A cgroup v2 hierarchy this test may write to (root, a cgroup2 mount), or None.
fn cgroup2_mount() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = info.lines().find(|l| l.split(" - ").nth(1).is_some_and(|t| t.starts_with("cgroup2 ")))?;
    Some(PathBuf::from(line.split(' ').nth(4)?))
}

/// A cgroup marked delegated as systemd marks it (user.delegate=1), removed at drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(mount: &Path, name: &str) -> Option<TestCgroup> {
        let dir = mount.join(format!("ww-test-{}-{name}", std::process::id()));
        fs::create_dir(&dir).ok()?;
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: valid NUL-terminated path and attribute name, a 1-byte value.
        let rc = unsafe { libc::setxattr(c.as_ptr(), c"user.delegate".as_ptr(), b"1".as_ptr().cast(), 1, 0) };
        let cg = TestCgroup(dir);
        (rc == 0).then_some(cg)
    }

    fn procs(&self, sub: &str) -> Vec<i32> {
        let text = fs::read_to_string(self.0.join(sub).join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|l| l.parse().ok()).collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(rd) = fs::read_dir(&self.0) {
            for sub in rd.flatten().filter(|e| e.path().is_dir()) {
                let _ = fs::write(sub.path().join("cgroup.kill"), "1");
                let p = sub.path();
                let _ = wait_for_removal(&p);
            }
        }
        let _ = fs::write(self.0.join("cgroup.kill"), "1");
        let _ = wait_for_removal(&self.0);
    }
}

fn wait_for_removal(dir: &Path) -> Option<()> {
    let deadline = std::time::Instant::now() + PATIENCE;
    while fs::remove_dir(dir).is_err() && dir.exists() {
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Some(())
}

#[test]
fn in_a_delegated_cgroup_each_run_has_its_own_and_it_is_killed_whole() {
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: needs root and a cgroup v2 hierarchy");
        return;
    };
    let Some(cg) = TestCgroup::new(&mount, "deleg") else {
        eprintln!("skipped: cannot make a delegated cgroup under {}", mount.display());
        return;
    };
    let root = Root::new();
    let _guard = Leftovers(&root, "cgw");
    let mut cmd = command(&root, "cgw", &[("SHUTDOWN_GRACE", "0"), ("KILL_GRACE", "0.5")]);
    let procs =
        std::ffi::CString::new(cg.0.join("cgroup.procs").as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: only open/write/close on data prepared before the fork.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let mut w = Worker::spawn_command(&root, "cgw", cmd);
    w.wait_notify("READY=1");
    assert_eq!(cg.procs("supervisor"), vec![w.pid()], "the daemon moved to a leaf of its own");
    root.submit("cgw", "c1", "escape sleep 2");
    let pid = escapee(&root, "c1");
    let run = cg.0.join("task-c1-1");
    assert!(cg.procs("task-c1-1").contains(&pid), "the escaped process is in the run's cgroup");
    assert_eq!(root.wait_result("cgw", "c1")["status"], "completed");
    none_left(&root, "cgw");
    wait_for("the cgroup of the run that ended removed", || (!run.exists()).then_some(()));
    root.submit("cgw", "c2", "escape sleep 600");
    escapee(&root, "c2");
    assert!(w.stop().success(), "{}", w.log_text());
    none_left(&root, "cgw");
    assert!(!cg.0.join("task-c2-1").exists(), "the stopped worker left the cgroup of its run");
}
