//! Test helpers: a temp spool root per test, the real `worker-watcher` binary run with the
//! stand-in agent, and waits that poll a condition until a generous deadline.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_worker-watcher");
pub const LISTENER_BIN: &str = env!("CARGO_BIN_EXE_orchestrator-listener");
pub const STAND_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stand-in/claude");

/// How long any wait may take before the test fails; generous for loaded machines.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `f` until it returns `Some`, or panics after PATIENCE with `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn read_json(path: &Path) -> Option<Value> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Names in a folder, sorted, without dot-files.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A spool root in a temp folder.
pub struct Root {
    pub dir: tempfile::TempDir,
}

impl Root {
    pub fn new() -> Root {
        Root { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn queue(&self, worker: &str) -> PathBuf {
        self.path().join("tasks").join(worker)
    }

    pub fn inflight(&self, worker: &str) -> PathBuf {
        self.queue(worker).join(".inflight")
    }

    pub fn state_dir(&self) -> PathBuf {
        let d = self.path().join("stand-in-state");
        fs::create_dir_all(&d).expect("state dir");
        d
    }

    /// Submits atomically: a dot-temp file renamed into the queue.
    pub fn submit(&self, worker: &str, id: &str, description: &str) {
        self.submit_json(worker, id, &serde_json::json!({"task_id": id, "description": description}));
    }

    pub fn submit_json(&self, worker: &str, name: &str, task: &Value) {
        let q = self.queue(worker);
        fs::create_dir_all(&q).expect("queue");
        let tmp = q.join(format!(".{name}.tmp"));
        fs::write(&tmp, task.to_string()).expect("write task");
        fs::rename(&tmp, q.join(format!("{name}.json"))).expect("rename task");
    }

    pub fn result(&self, worker: &str, id: &str) -> Option<Value> {
        read_json(&self.path().join("results").join(worker).join(format!("{id}.json")))
    }

    pub fn wait_result(&self, worker: &str, id: &str) -> Value {
        wait_for(&format!("the result of {id}"), || self.result(worker, id))
    }

    pub fn heartbeat(&self, worker: &str) -> Option<Value> {
        read_json(&self.path().join("heartbeats").join(format!("{worker}.json")))
    }

    /// Waits until the heartbeat satisfies `f`.
    pub fn wait_heartbeat(&self, worker: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || self.heartbeat(worker).filter(|h| f(h)))
    }

    pub fn dlq(&self, worker: &str) -> Vec<Value> {
        let dir = self.path().join("dlq").join(worker);
        names(&dir).iter().filter_map(|n| read_json(&dir.join(n))).collect()
    }

    pub fn results(&self, worker: &str) -> Vec<String> {
        names(&self.path().join("results").join(worker))
    }

    /// `triggers/orchestrator/`: the listener's events.
    pub fn events_dir(&self) -> PathBuf {
        self.path().join("triggers").join("orchestrator")
    }

    /// The listener's events, in the order of their names (the time of what they report).
    pub fn events(&self) -> Vec<Value> {
        let dir = self.events_dir();
        names(&dir).iter().filter_map(|n| read_json(&dir.join(n))).collect()
    }

    /// Waits until the events satisfy `f`; returns them.
    pub fn wait_events(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        wait_for(what, || Some(self.events()).filter(|e| f(e)))
    }
}

/// Events of kind `kind` (about `worker`, when given).
pub fn of_kind<'a>(events: &'a [Value], kind: &str, worker: Option<&str>) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind && worker.is_none_or(|w| e["worker"] == w)).collect()
}

/// `orchestrator-listener --root ROOT` with a clean environment, as `command` is for a worker.
pub fn listener_command(root: &Root, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(LISTENER_BIN);
    cmd.arg("--root")
        .arg(root.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("ENABLE_METRICS", "false")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running `worker-watcher`, with its stderr in a log file and a notify socket of ours,
/// drained by a thread as systemd would (a full socket would block the daemon's sends).
pub struct Worker {
    pub child: Child,
    pub log: PathBuf,
    notes: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn drain_notify(sock: UnixDatagram, notes: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            notes.lock().expect("lock").push(msg);
        }
    }
}

pub fn command(root: &Root, name: &str, env: &[(&str, &str)]) -> Command {
    command_via(&[BIN], root, name, env)
}

/// `command`, run through `prefix` (its first word is the program; `BIN` comes last).
pub fn command_via(prefix: &[&str], root: &Root, name: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(name)
        .arg("--root")
        .arg(root.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLAUDE_COMMAND", STAND_IN)
        .env("CLAUDE_ARGS", "-p --output-format json")
        .env("LOG_FORMAT", "json")
        .env("ENABLE_METRICS", "false")
        .env("FAKE_STATE_DIR", root.state_dir())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl Worker {
    /// Starts a worker and waits for READY=1 on its notify socket.
    pub fn start(root: &Root, name: &str, env: &[(&str, &str)]) -> Worker {
        let w = Worker::spawn(root, name, env);
        w.wait_notify("READY=1");
        w
    }

    /// Starts a worker without waiting for it.
    pub fn spawn(root: &Root, name: &str, env: &[(&str, &str)]) -> Worker {
        Worker::spawn_command(root, name, command(root, name, env))
    }

    /// Starts a worker as user and group `uid` (when the tests run as root), and waits for
    /// READY=1.
    pub fn start_as(root: &Root, name: &str, env: &[(&str, &str)], uid: u32) -> Worker {
        use std::os::unix::process::CommandExt;
        let mut cmd = command(root, name, env);
        cmd.uid(uid).gid(uid);
        let w = Worker::spawn_with(root, name, cmd, true);
        w.wait_notify("READY=1");
        w
    }

    /// Starts a worker from a command made by `command` or `command_via`.
    pub fn spawn_command(root: &Root, name: &str, cmd: Command) -> Worker {
        Worker::spawn_with(root, name, cmd, false)
    }

    /// `other_user`: the notify socket is opened to every user.
    fn spawn_with(root: &Root, name: &str, mut cmd: Command, other_user: bool) -> Worker {
        let n = std::process::id() as u64 * 1000 + fastrand_u16() as u64;
        let sock = root.path().join(format!("notify-{name}-{n}.sock"));
        let notify = UnixDatagram::bind(&sock).expect("notify socket");
        notify.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let notes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (n2, s2) = (notes.clone(), stop.clone());
        std::thread::spawn(move || drain_notify(notify, n2, s2));
        let log = root.path().join(format!("{name}-{n}.log"));
        if other_user {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).expect("chmod socket");
        }
        let child = cmd
            .env("NOTIFY_SOCKET", &sock)
            .stderr(fs::File::create(&log).expect("log"))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn worker-watcher");
        Worker { child, log, notes, stop }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a notification containing `what`.
    pub fn wait_notify(&self, what: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(m) = self.notes.lock().expect("lock").iter().find(|m| m.contains(what)) {
                return m.clone();
            }
            assert!(Instant::now() < deadline, "no {what} from the worker; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every notification so far.
    pub fn notifications(&self) -> Vec<String> {
        self.notes.lock().expect("lock").clone()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_for("the worker to exit", || self.child.try_wait().expect("try_wait"))
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn fastrand_u16() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static N: AtomicU16 = AtomicU16::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Whether any process of process group `pgid` is alive.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Processes of worker `worker` on `root`: their environment has WATCHER_WORKER=`worker` and
/// the FAKE_STATE_DIR of `root`, which [`command`] sets and agents and their children inherit.
/// Tests run in parallel in one process and many name their worker alike, so the worker's
/// name alone would find another test's agents.
pub fn agents_of(root: &Root, worker: &str) -> Vec<i32> {
    let worker_var = format!("WATCHER_WORKER={worker}");
    let root_var = format!("FAKE_STATE_DIR={}", root.state_dir().display());
    let wanted = [worker_var.as_bytes(), root_var.as_bytes()];
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
                .filter(|pid| {
                    fs::read(format!("/proc/{pid}/environ"))
                        .map(|env| {
                            let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
                            wanted.iter().all(|w| vars.contains(w))
                        })
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `rm -rf` of `dirs` under the root, done again while a daemon writing there makes it fail.
pub fn rm_rf(root: &Root, dirs: &[&str]) {
    for dir in dirs {
        wait_for("rm -rf", || match fs::remove_dir_all(root.path().join(dir)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => None,
            _ => Some(()),
        });
    }
}
