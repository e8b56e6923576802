//! Tests' own engine: a real `redis-server` (or the binary named by WW_REDIS_SERVER, e.g.
//! Valkey's) started per test on a unix socket in a temp folder, with AOF on. Without a
//! server binary a test says SKIP and passes, unless CI is set: there it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::Engine;
use super::keys::{Fleet, Keys};
use super::ops::Queue;
use super::settings::{Address, Target};

pub(crate) struct Server {
    dir: tempfile::TempDir,
    binary: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WW_REDIS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("redis-server")).find(|p| p.is_file()))
}

/// Polls `f` until it is `Some`, at most `limit`.
pub(crate) fn until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Server {
    /// Starts a server with `extra` settings (`--name value` pairs), or `None` (SKIP).
    pub(crate) fn start(extra: &[&str]) -> Option<Server> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server not found and CI is set: .ci/run installs it (or set WW_REDIS_SERVER)"
            );
            eprintln!("SKIP: redis-server not found (install redis-server, or set WW_REDIS_SERVER)");
            return None;
        };
        let mut s = Server {
            dir: tempfile::tempdir().expect("temp dir"),
            binary,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.spawn();
        Some(s)
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log")).expect("log");
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--port", "0", "--unixsocket"]).arg(self.socket());
        cmd.args(["--unixsocketperm", "700", "--appendonly", "yes", "--appendfsync", "always", "--save", ""]);
        cmd.arg("--dir").arg(dir).args(&self.extra);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let up = until(Duration::from_secs(20), || {
            let mut c = redis::Client::open(format!("unix://{}", self.socket().display()))
                .ok()?
                .get_connection()
                .ok()?;
            redis::cmd("PING").query::<String>(&mut c).ok()
        });
        assert!(
            up.is_some(),
            "redis-server did not answer: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
    }

    /// kill -9, then waits for it to be gone.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same folder (its AOF) and socket.
    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub(crate) fn target(&self) -> Target {
        Target { address: Address::Unix(self.socket()), username: None, db: 0 }
    }

    /// A connection with the scripts loaded and `worker`'s groups made.
    pub(crate) fn engine(&self) -> Engine {
        Engine::connect(&self.target(), None, Duration::from_secs(10)).expect("connect")
    }

    /// `worker`'s queue as host `consumer` sees it, with its groups made.
    pub(crate) fn queue(&self, worker: &str, consumer: &str) -> (Engine, Queue) {
        let keys: Keys = Fleet::new("ww").worker(worker);
        let mut e = self.engine();
        e.ensure_groups(&keys).expect("groups");
        (e, Queue::new(keys, consumer))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}
