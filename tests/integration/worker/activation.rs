//! Where the metrics endpoint listens: a socket passed as systemd does (LISTEN_FDS and
//! LISTEN_PID), ignored when LISTEN_PID names another process; a port of 0; a busy address;
//! and nothing bound under systemd when no socket was passed.

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;

use crate::support::scrape::*;
use crate::support::util::*;

/// Runs the worker as systemd would with one passed socket: `fd` becomes fd 3, LISTEN_FDS=1,
/// and LISTEN_PID is the worker's own pid (set by a shell that then execs the worker), or
/// `listen_pid` when given.
fn spawn_activated(root: &Root, fd: RawFd, listen_pid: Option<&str>, env: &[(&str, &str)]) -> Worker {
    let script = match listen_pid {
        None => "export LISTEN_PID=$$; exec \"$@\"".to_string(),
        Some(pid) => format!("export LISTEN_PID={pid}; exec \"$@\""),
    };
    let mut all = vec![("ENABLE_METRICS", "true"), ("LISTEN_FDS", "1")];
    all.extend_from_slice(env);
    let mut cmd = command_via(&["sh", "-c", &script, "sh", BIN], root, "marie", &all);
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) are made.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let w = Worker::spawn_command(root, "marie", cmd);
    w.wait_notify("READY=1");
    w
}

/// The inode of a socket, as /proc/PID/fd shows it (`socket:[N]`).
fn socket_link(fd: RawFd) -> String {
    let ino = std::fs::metadata(format!("/proc/self/fd/{fd}")).expect("fd").ino();
    format!("socket:[{ino}]")
}

#[test]
fn serves_the_socket_systemd_passed_and_no_agent_inherits_it() {
    let root = Root::new();
    let path = root.path().join("activated.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let w = spawn_activated(&root, listener.as_raw_fd(), None, &[]);
    let target = Target::Unix(path);
    let s = target.scrape();
    assert_eq!(s.get("watcher_active_tasks{worker=\"marie\"}"), 0.0);
    let hb = root.wait_heartbeat("marie", "the heartbeat", |_| true);
    assert_eq!(hb["metrics"][0], root.path().join("activated.sock").display().to_string());
    // An agent holds neither the socket nor LISTEN_* in its environment.
    root.submit("marie", "h", "hang");
    let agent = wait_for("the agent", || agents_of(&root, "marie").first().copied());
    let link = socket_link(listener.as_raw_fd());
    let fds = std::fs::read_dir(format!("/proc/{agent}/fd")).expect("agent fds");
    for fd in fds.flatten() {
        let to = std::fs::read_link(fd.path()).map(|p| p.display().to_string()).unwrap_or_default();
        assert_ne!(to, link, "the agent inherited the metrics socket as fd {:?}", fd.file_name());
    }
    let env = std::fs::read(format!("/proc/{agent}/environ")).expect("agent environ");
    assert!(!String::from_utf8_lossy(&env).contains("LISTEN_"), "LISTEN_* reached the agent");
    drop(w);
}

#[test]
fn listen_pid_of_another_process_is_ignored() {
    let root = Root::new();
    let passed_path = root.path().join("not-for-us.sock");
    let passed = UnixListener::bind(&passed_path).expect("bind");
    let own = root.path().join("own.sock");
    let own_s = own.display().to_string();
    let w = spawn_activated(&root, passed.as_raw_fd(), Some("1"), &[("METRICS_LISTEN", &own_s)]);
    assert!(w.log_text().contains("LISTEN_FDS ignored"), "{}", w.log_text());
    // A request on the socket not meant for the worker, then two scrapes of its own: by the
    // time the second is answered, the loop has handled every event that came before it.
    let mut early = UnixStream::connect(&passed_path).expect("connect");
    std::io::Write::write_all(&mut early, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let target = Target::Unix(own);
    target.scrape();
    target.scrape();
    early.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64];
    let e = early.read(&mut buf).expect_err("no answer on a socket meant for another process");
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
}

#[test]
fn port_zero_takes_a_free_port_and_says_which() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("ENABLE_METRICS", "true"), ("METRICS_LISTEN", "127.0.0.1:0")]);
    let hb = root.wait_heartbeat("marie", "the metrics address", |h| h["metrics"][0].is_string());
    let addr = hb["metrics"][0].as_str().expect("address").parse().expect("ADDR:PORT");
    let target = Target::Tcp(addr);
    assert_eq!(target.get("/healthz").status, 200);
    target.scrape();
}

#[test]
fn a_busy_address_is_one_line_and_exit_78() {
    let root = Root::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let mut w = Worker::spawn(&root, "marie", &[("ENABLE_METRICS", "true"), ("METRICS_PORT", &port)]);
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(78), "log:\n{}", w.log_text());
    let log = w.log_text();
    assert_eq!(log.trim().lines().count(), 1, "one line: {log}");
    assert!(log.contains(&format!("METRICS_PORT={port}")) && log.contains("in use"), "{log}");
}

#[test]
fn under_systemd_without_a_socket_nothing_is_bound() {
    let root = Root::new();
    let w = Worker::start(&root, "marie", &[("ENABLE_METRICS", "true"), ("INVOCATION_ID", "0123abcd")]);
    let hb = root.wait_heartbeat("marie", "the heartbeat", |_| true);
    assert!(hb.get("metrics").is_none(), "{hb}");
    assert!(w.log_text().contains("metrics are off"), "{}", w.log_text());
}

/// Tests run in parallel in one process, and many name their worker `marie`: the agents of
/// this test's worker are told apart from another test's by the root they run under.
#[test]
fn agents_of_finds_only_the_agents_of_its_own_root() {
    let (root, other) = (Root::new(), Root::new());
    let decoy = |r: &Root| {
        std::process::Command::new("sleep")
            .arg("600")
            .env("WATCHER_WORKER", "marie")
            .env("FAKE_STATE_DIR", r.state_dir())
            .spawn()
            .expect("spawn sleep")
    };
    let (mut ours, mut theirs) = (decoy(&root), decoy(&other));
    let found = agents_of(&root, "marie");
    let (o, t) = (ours.id() as i32, theirs.id() as i32);
    let _ = (ours.kill(), theirs.kill(), ours.wait(), theirs.wait());
    assert!(found.contains(&o), "its own agent: {found:?}");
    assert!(!found.contains(&t), "another root's agent {t}: {found:?}");
}
