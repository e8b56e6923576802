//! Helpers of the tests that change the machine: root, sysctls, mounts, CPU time. Each test
//! that needs root says so and returns when it is not (a skip, not a failure). What is changed
//! is put back by a guard's `Drop`, so a failing test leaves the machine as it found it.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whether the tests run as root; if not, says which test is skipped and why.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIP {test}: needs root (mounts, sysctls or another user)");
    }
    root
}

/// Whether `program` is on the PATH; if not, says which test is skipped.
pub fn have_or_skip(program: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if !found {
        eprintln!("SKIP {test}: {program} is not installed");
    }
    found
}

/// Sysctls are global to the machine: one test at a time changes them, in this process (the
/// mutex) and across processes (an flock), so parallel test runs never see each other's values.
pub struct Exclusive {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

pub fn exclusive() -> Exclusive {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = File::create("/run/worker-watcher-tests-sysctl.lock")
        .or_else(|_| File::create(std::env::temp_dir().join("worker-watcher-tests-sysctl.lock")))
        .expect("lock file");
    // SAFETY: flock on an fd we own; blocks until the other holder is done.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0, "flock");
    Exclusive { _file: file, _guard: guard }
}

/// A sysctl set for a while; the old value is written back on drop, even on a panic.
pub struct Sysctl {
    path: PathBuf,
    old: String,
}

impl Sysctl {
    /// `name` as in `sysctl`: `fs.inotify.max_queued_events`.
    pub fn set(_held: &Exclusive, name: &str, value: &str) -> Sysctl {
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        let old = fs::read_to_string(&path).expect("read sysctl").trim().to_string();
        fs::write(&path, value).expect("write sysctl");
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.path, &self.old) {
            eprintln!("could not restore {} to {}: {e}", self.path.display(), self.old);
        }
    }
}

/// A mount made by a test, detached on drop.
pub struct Mount {
    pub target: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run command");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Mount {
    /// A tmpfs of `size` (`mount -o size=`) on `target`.
    pub fn tmpfs(target: &Path, size: &str) -> Mount {
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(target));
        Mount { target: target.to_path_buf() }
    }

    /// `source` seen through bindfs (FUSE) at `target`.
    pub fn bindfs(source: &Path, target: &Path) -> Mount {
        run(Command::new("bindfs").arg("--no-allow-other").arg(source).arg(target));
        Mount { target: target.to_path_buf() }
    }

    pub fn remount(&self, opts: &str) {
        run(Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&self.target));
    }

    /// Like `remount`; `false` when it failed (say, busy).
    pub fn try_remount(&self, opts: &str) -> bool {
        let mut cmd = Command::new("mount");
        cmd.args(["-o", &format!("remount,{opts}")]).arg(&self.target);
        cmd.output().is_ok_and(|o| o.status.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.target).status();
    }
}

/// CPU time (user + system) the process has used itself, children not included.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Polls `f` until it returns `Some`, for up to `limit` (long runs: bursts, soaks).
pub fn wait_long<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The environment of a cheap agent that records each run: `/bin/sh` appends
/// `<task id> <daemon pid>` to `log` (one short O_APPEND write: whole lines) and exits 0.
pub fn counting_agent(log: &Path) -> [(&'static str, String); 2] {
    [
        ("CLAUDE_COMMAND", "/bin/sh".to_string()),
        ("CLAUDE_ARGS", format!("-c 'echo \"$WATCHER_TASK_ID $PPID\" >> {}'", log.display())),
    ]
}

/// Runs per task id in a counting agent's log.
pub fn runs(log: &Path) -> std::collections::HashMap<String, Vec<String>> {
    let mut m: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for line in fs::read_to_string(log).unwrap_or_default().lines() {
        let mut it = line.split(' ');
        if let (Some(id), Some(pid)) = (it.next(), it.next()) {
            m.entry(id.to_string()).or_default().push(pid.to_string());
        }
    }
    m
}

/// Temp files (`.ww-*.tmp`) left anywhere under `dir`.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(temp_files(&p));
        } else if name.starts_with(".ww-") && name.ends_with(".tmp") {
            out.push(p);
        }
    }
    out
}
