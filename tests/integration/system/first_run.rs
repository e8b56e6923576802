//! The README's first command, `scripts/try`, run as a new user runs it: in a fresh copy of the
//! repository, where nothing was built and no spool exists. It must build, run the three
//! workers and the listener, show the results, a dead letter, the events and the status, and
//! leave no process behind, also when it is interrupted.
//!
//! The copy holds the tracked files as they are in this working tree, with their modification
//! times: what is tested is what is being edited, and the script's `cargo build --release`,
//! pointed at this build's target folder (CARGO_TARGET_DIR), reuses the release build that CI
//! makes for the packages instead of making a second one (a `git clone` would give every file
//! a new time and rebuild the crate at each run).
//!
//! The script runs in a session of its own, so that whatever it leaves behind is found: every
//! process of that session, and every process whose command line names the spool.

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::util::*;

/// A cold release build (LTO, one codegen unit) on a loaded CI machine takes minutes.
const BUILD_PATIENCE: Duration = Duration::from_secs(30 * 60);

/// A fresh copy of the repository's tracked files, with their modes and times.
fn checkout() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out =
        Command::new("git").arg("-C").arg(repo).args(["ls-files", "-z"]).output().expect("git ls-files");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().expect("tempdir");
    for rel in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("a UTF-8 path"));
        let from = repo.join(rel);
        let Ok(meta) = fs::symlink_metadata(&from) else { continue }; // deleted, not committed yet
        let to = dir.path().join(rel);
        fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", rel.display()));
        let file = fs::File::options().write(true).open(&to).expect("open the copy");
        file.set_modified(meta.modified().expect("mtime")).expect("set mtime");
    }
    dir
}

/// The target folder this test binary was built in (`target/debug/worker-watcher` → `target`).
fn target_dir() -> PathBuf {
    Path::new(BIN).ancestors().nth(2).expect("the target folder").to_path_buf()
}

/// A run of `scripts/try` in a session of its own; whatever is left of the session when the
/// test ends (it failed) is killed, so that a failing test leaves nothing behind either.
struct Run {
    child: Child,
    sid: i32,
    log: PathBuf,
}

impl Run {
    /// `scripts/try ARGS…` in `tree`, its output in `log`.
    fn start(tree: &Path, args: &[&Path], env: &[(&str, &Path)], log: &Path) -> Run {
        let out = fs::File::create(log).expect("log");
        let mut cmd = Command::new(tree.join("scripts/try"));
        cmd.args(args)
            .current_dir(tree)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("WATCHER_ROOT")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn scripts/try");
        Run { sid: child.id() as i32, child, log: log.to_path_buf() }
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the script's end, at most `patience`.
    fn wait(&mut self, patience: Duration) -> ExitStatus {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "scripts/try did not end:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits, as long as a cold build may take, until `f` holds; fails if the script ended.
    fn wait_running(&mut self, what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + BUILD_PATIENCE;
        while !f() {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("scripts/try ended ({status}) before {what}:\n{}", self.output());
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, target: i32, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(target, sig) }, 0, "kill {target}");
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in session_pids(self.sid) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn session_pids(sid: i32) -> Vec<i32> {
    processes().into_iter().filter(|p| p.session == sid).map(|p| p.pid).collect()
}

struct Proc {
    pid: i32,
    state: String,
    session: i32,
    cmdline: String,
}

fn processes() -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // After the command's closing parenthesis: state ppid pgrp session …
        let fields: Vec<&str> =
            stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        found.push(Proc {
            pid,
            state: fields.first().unwrap_or(&"?").to_string(),
            session: fields.get(3).and_then(|s| s.parse().ok()).unwrap_or(0),
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
        });
    }
    found
}

/// Live processes of session `sid`, or whose command line contains `needle`: `pid state
/// cmdline`. A zombie has exited already: an agent's child orphaned when its process group
/// was killed waits there for init to reap it.
fn survivors(sid: i32, needle: &str) -> Vec<String> {
    processes()
        .into_iter()
        .filter(|p| p.state != "Z" && (p.session == sid || p.cmdline.contains(needle)))
        .map(|p| format!("{} {} {}", p.pid, p.state, p.cmdline))
        .collect()
}

/// The lines of `text` from the one that starts with `== title` to the next section.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("== {title}")));
    let first = lines.next().into_iter();
    first.chain(lines.take_while(|l| !l.starts_with("== "))).collect()
}

#[test]
fn first_command_runs_the_fleet_and_stops_it() {
    let tree = checkout();
    let work = tempfile::tempdir().expect("tempdir");
    let spool = work.path().join("spool");
    let log = work.path().join("try.log");
    let stand_in = tree.path().join("tests/stand-in/claude");
    let mut run = Run::start(tree.path(), &[&spool], &[("CLAUDE_COMMAND", &stand_in)], &log);
    let status = run.wait(BUILD_PATIENCE);
    let out = run.output();
    assert!(status.success(), "scripts/try: {status}\n{out}");

    for w in ["marie", "anga", "fabien"] {
        let result = section(&out, &format!("result of test-001 ({w})")).join("\n");
        assert!(
            result.contains(&format!("test-001 ({w})")) && result.contains("status     completed"),
            "{out}"
        );
        assert!(result.contains("output     Echo 'Hello'"), "{result}");
    }
    let failed = section(&out, "result of test-002 (fabien)").join("\n");
    assert!(failed.contains("failed (timeout)"), "{out}");
    let dlq = section(&out, "dead letters").join("\n");
    assert!(dlq.lines().any(|l| l.starts_with("test-002  test-002  timeout")), "{out}");
    let events = section(&out, "the listener's events");
    let count = |kind: &str| events.iter().filter(|l| l.contains(&format!("  {kind} "))).count();
    assert_eq!([count("task_completed"), count("task_failed"), count("batch_completed")], [3, 1, 1], "{out}");
    let status_rows = section(&out, "the workers: watcherctl status");
    for (w, processed, failed) in [("anga", 1, 0), ("fabien", 2, 1), ("marie", 1, 0)] {
        let row =
            status_rows.iter().find(|l| l.starts_with(&format!("{w} "))).unwrap_or_else(|| panic!("{out}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], "idle", "{row}");
        assert_eq!(cells[cells.len() - 2..], [processed.to_string(), failed.to_string()], "{row}");
    }
    // The old guide's one-liner, `grep ERROR`, finds the task that failed for good.
    let errors = section(&out, "errors in the logs").join("\n");
    assert!(errors.contains("logs/fabien.log:") && errors.contains("\"task_id\":\"test-002\""), "{out}");
    assert!(out.contains("stopped: every process started here has exited"), "{out}");
    assert_eq!(survivors(run.sid, &spool.to_string_lossy()), Vec::<String>::new(), "{out}");
    // A spool the user named is kept, with the logs.
    assert!(spool.join("results/marie/test-001.json").exists() && spool.join("logs/marie.log").exists());
}

/// An agent that never answers, so that the script is surely in the middle of its run.
fn hanging_agent(dir: &Path) -> PathBuf {
    let path = dir.join("agent-that-hangs");
    fs::write(&path, "#!/bin/sh\nexec sleep 100000\n").expect("write");
    let mut perms = fs::metadata(&path).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&path, perms).expect("chmod");
    path
}

/// The spools scripts/try made under `tmp` (it names them worker-watcher-try.*).
fn temp_spools(tmp: &Path) -> Vec<PathBuf> {
    names(tmp).into_iter().filter(|n| n.starts_with("worker-watcher-try.")).map(|n| tmp.join(n)).collect()
}

fn all_agents_started(spool: &Path) -> bool {
    ["marie", "anga", "fabien"].iter().all(|w| spool.join(format!("triggers/{w}/test-001.json")).exists())
}

#[test]
fn ctrl_c_stops_everything_and_removes_the_temp_spool() {
    let tree = checkout();
    let work = tempfile::tempdir().expect("tempdir");
    let tmp = work.path().join("tmp");
    fs::create_dir(&tmp).expect("mkdir");
    let log = work.path().join("try.log");
    let agent = hanging_agent(work.path());
    let mut run = Run::start(tree.path(), &[], &[("CLAUDE_COMMAND", &agent), ("TMPDIR", &tmp)], &log);
    run.wait_running("an agent on each worker", || {
        temp_spools(&tmp).first().is_some_and(|s| all_agents_started(s))
    });
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    run.signal(-run.sid, libc::SIGINT);
    let status = run.wait(PATIENCE);
    let out = run.output();
    assert_eq!(status.signal(), Some(libc::SIGINT), "it ends by the signal it got: {status}\n{out}");
    assert!(out.contains("stopped: every process started here has exited"), "{out}");
    assert_eq!(survivors(run.sid, &tmp.to_string_lossy()), Vec::<String>::new(), "{out}");
    assert_eq!(temp_spools(&tmp), Vec::<PathBuf>::new(), "the temp spool is removed: {out}");
}

fn run_output_has(log: &Path, what: &str) -> bool {
    fs::read_to_string(log).is_ok_and(|t| t.contains(what))
}

#[test]
fn sigterm_to_the_script_alone_stops_what_it_started() {
    let tree = checkout();
    let work = tempfile::tempdir().expect("tempdir");
    let spool = work.path().join("spool");
    let log = work.path().join("try.log");
    let agent = hanging_agent(work.path());
    let mut run = Run::start(tree.path(), &[&spool], &[("CLAUDE_COMMAND", &agent)], &log);
    run.wait_running("an agent on each worker", || all_agents_started(&spool));
    // Only the script is told: it must stop the daemons itself (and they their agents).
    run.signal(run.sid, libc::SIGTERM);
    // A second signal while it stops (timeout(1) sends two, an impatient user too) must not
    // cut the stop short.
    run.wait_running("the stop", || run_output_has(&log, "== stopping"));
    run.signal(run.sid, libc::SIGTERM);
    let status = run.wait(PATIENCE);
    let out = run.output();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}\n{out}");
    assert!(out.contains("stopped: every process started here has exited"), "{out}");
    assert_eq!(survivors(run.sid, &spool.to_string_lossy()), Vec::<String>::new(), "{out}");
    // Tasks cut short by the stop are re-queued, never failed: nothing is lost.
    assert_eq!(names(&spool.join("tasks/marie")), ["test-001.json"], "{out}");
}
