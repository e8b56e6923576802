//! Engines for the migration and failover tests: a real `redis-server` (or WW_REDIS_SERVER)
//! per test on a unix socket or a loopback port, with AOF on; replicas and `redis-sentinel`s
//! on loopback; plain commands; watcherctl run with SPOOL. Without a server binary a test
//! says SKIP and passes, unless CI is set (.ci/run installs redis-server and redis-sentinel).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use redis::Value;

use crate::support::ctl::{finish, Ran, CTL};
use crate::support::util::*;

fn binary(name: &str, var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The server binary, or `None` (SKIP) outside CI.
pub fn server_binary() -> Option<PathBuf> {
    let found = binary("redis-server", "WW_REDIS_SERVER");
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server not found and CI is set: .ci/run installs it"
        );
        eprintln!("SKIP: redis-server not found (install redis-server, or set WW_REDIS_SERVER)");
    }
    found
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One `redis-server` (or `redis-server --sentinel`) process in a folder of its own.
pub struct Server {
    pub dir: PathBuf,
    pub port: Option<u16>,
    binary: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Server {
    /// Starts `binary` in `dir` with `args` and waits until it answers PING.
    pub fn spawn(binary: &Path, dir: &Path, port: Option<u16>, args: Vec<String>) -> Server {
        std::fs::create_dir_all(dir).expect("server dir");
        let mut s = Server { dir: dir.to_owned(), port, binary: binary.to_owned(), args, child: None };
        s.run();
        s
    }

    fn run(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("log")).expect("log");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for("the server to answer", || redis::cmd("PING").query::<String>(&mut self.connection()?).ok());
    }

    /// A data server on a unix socket in `dir`, AOF `always`, with `extra` settings.
    pub fn unix(dir: &Path, extra: &[&str]) -> Option<Server> {
        let binary = server_binary()?;
        let mut args: Vec<String> = ["--port", "0", "--unixsocket", "sock", "--unixsocketperm", "777"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--appendonly", "yes", "--appendfsync", "always", "--save", ""].map(String::from));
        args.push("--dir".into());
        args.push(dir.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        Some(Server::spawn(&binary, dir, None, args))
    }

    /// A data server on 127.0.0.1:`port`, AOF `always`, with `extra` settings.
    pub fn tcp(dir: &Path, port: u16, extra: &[String]) -> Option<Server> {
        let binary = server_binary()?;
        let mut args: Vec<String> =
            vec!["--bind".into(), "127.0.0.1".into(), "--port".into(), port.to_string()];
        args.extend(["--appendonly", "yes", "--appendfsync", "always", "--save", ""].map(String::from));
        args.push("--dir".into());
        args.push(dir.display().to_string());
        args.extend(extra.iter().cloned());
        Some(Server::spawn(&binary, dir, Some(port), args))
    }

    /// A Sentinel on 127.0.0.1:`port` watching `service` at 127.0.0.1:`primary` (quorum 2,
    /// down after 1 s).
    pub fn sentinel(dir: &Path, port: u16, service: &str, primary: u16) -> Option<Server> {
        let binary = server_binary()?;
        std::fs::create_dir_all(dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "bind 127.0.0.1\nport {port}\ndir {}\nsentinel monitor {service} 127.0.0.1 {primary} 2\n\
             sentinel down-after-milliseconds {service} 1000\nsentinel failover-timeout {service} 10000\n\
             sentinel parallel-syncs {service} 1\n",
            dir.display()
        );
        std::fs::write(&conf, text).expect("sentinel.conf");
        Some(Server::spawn(&binary, dir, Some(port), vec![conf.display().to_string(), "--sentinel".into()]))
    }

    /// Starts it again with the same arguments (its AOF, its port), plus `extra`.
    pub fn restart_with(&mut self, extra: &[String]) {
        self.kill9();
        self.args.extend(extra.iter().cloned());
        self.run();
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// SPOOL for the daemons (the unix socket, or the loopback port).
    pub fn url(&self) -> String {
        match self.port {
            Some(p) => format!("redis://127.0.0.1:{p}"),
            None => format!("redis+unix://{}", self.socket().display()),
        }
    }

    pub fn connection(&self) -> Option<redis::Connection> {
        let url = match self.port {
            Some(p) => format!("redis://127.0.0.1:{p}"),
            None => format!("unix://{}", self.socket().display()),
        };
        let c = redis::Client::open(url).ok()?.get_connection().ok()?;
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
        Some(c)
    }

    /// One command; panics on an error.
    pub fn cmd(&self, args: &[&str]) -> Value {
        self.try_cmd(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<Value> {
        let mut c = self
            .connection()
            .ok_or_else(|| redis::RedisError::from(std::io::Error::other("no connection")))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
    }

    pub fn int(&self, args: &[&str]) -> i64 {
        match self.cmd(args) {
            Value::Int(n) => n,
            Value::Nil => 0,
            other => panic!("{args:?}: not an integer: {other:?}"),
        }
    }

    /// A string reply as text; `None` for nil.
    pub fn text(&self, args: &[&str]) -> Option<String> {
        match self.cmd(args) {
            Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Value::SimpleString(s) => Some(s),
            _ => None,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// kill -9, waited for.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `watcherctl --root ROOT ARGS…` with `env` (SPOOL=…).
pub fn ctl_env(root: &Root, env: &[(&str, &str)], args: &[&str]) -> Ran {
    let mut cmd = Command::new(CTL);
    cmd.arg("--root")
        .arg(root.path())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    finish(cmd.spawn().expect("spawn watcherctl"))
}
