//! Running one agent process: spawned without a shell in its own process group with a
//! parent-death signal (and, with [`Containment`], in a cgroup of its own or under the
//! daemon as subreaper), fed its description on stdin, its stdout and stderr read without
//! ever blocking, and reaped so that nothing it started outlives it.
//!
//! This module knows nothing of tasks or retries; the daemon decides what an exit means.

pub(crate) mod agents;
mod capture;
pub(crate) mod cgroup;
mod contain;
mod last_object;
pub(crate) mod orphans;
mod spawn;
pub(crate) mod supervise;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

pub use capture::{Capture, Tail};
pub(crate) use contain::Containment;
pub(crate) use orphans::Mark;

/// Variables of the daemon's own that an agent must never see.
pub const STRIPPED_ENV: &[&str] =
    &["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];

/// Bytes of stderr kept for the result and the journal.
pub const STDERR_TAIL_BYTES: usize = 4096;

/// What to run.
#[derive(Debug)]
pub struct Spec {
    pub argv: Vec<OsString>,
    /// Set in the agent's environment, over the daemon's own (less STRIPPED_ENV).
    pub env: Vec<(OsString, OsString)>,
    /// Left out of the daemon's own environment as well.
    pub unset: Vec<OsString>,
    pub stdin: Vec<u8>,
    pub max_output: usize,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Exit {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// Which pipe of a child an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

impl Pipe {
    pub const ALL: [Pipe; 3] = [Pipe::Stdin, Pipe::Stdout, Pipe::Stderr];

    pub fn from_index(i: usize) -> Option<Pipe> {
        Pipe::ALL.get(i).copied()
    }
}

/// What the child printed.
#[derive(Debug, Default)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stdout_truncated: bool,
    pub stdout_bytes: u64,
    /// When stdout was cut: its last JSON object, summarised (the agent's result).
    pub last_object: Option<Vec<u8>>,
    pub stderr_tail: String,
}

/// A running agent process.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    stdin: Option<File>,
    stdin_buf: Vec<u8>,
    stdin_pos: usize,
    stdout: Option<File>,
    stderr: Option<File>,
    out: Capture,
    err: Tail,
    /// Its run's cgroup, when it has one.
    cgroup: Option<cgroup::Run>,
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with valid commands.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The agent's environment as `K=V` strings: the daemon's own, less [`STRIPPED_ENV`] and
/// `unset`, with `set` over it.
fn environment(set: &[(OsString, OsString)], unset: &[OsString]) -> Vec<OsString> {
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !STRIPPED_ENV.iter().any(|s| k == s) && !unset.contains(k))
        .filter(|(k, _)| !set.iter().any(|(sk, _)| sk == k))
        .collect();
    vars.extend(set.iter().cloned());
    vars.into_iter()
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            k
        })
        .collect()
}

/// The value of `name` in a `K=V` list.
fn env_value<'a>(env: &'a [OsString], name: &str) -> Option<&'a std::ffi::OsStr> {
    use std::os::unix::ffi::OsStrExt;
    env.iter().find_map(|kv| {
        let b = kv.as_bytes();
        let rest = b.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(std::ffi::OsStr::from_bytes(rest))
    })
}

fn pipe_file(fd: impl Into<OwnedFd>) -> io::Result<File> {
    let fd: OwnedFd = fd.into();
    set_nonblocking(fd.as_raw_fd())?;
    Ok(File::from(fd))
}

impl Child {
    /// Starts the agent. The caller registers the pipes with [`Child::register`].
    pub fn spawn(spec: Spec) -> io::Result<Child> {
        Child::spawn_in(spec, None)
    }

    /// Starts the agent in `cgroup`: it moves itself there before it execs, so that nothing
    /// it starts is ever outside. The cgroup is removed if the agent cannot start.
    pub(crate) fn spawn_in(spec: Spec, mut cgroup: Option<cgroup::Run>) -> io::Result<Child> {
        let env = environment(&spec.env, &spec.unset);
        let path = env_value(&env, "PATH").map(OsString::from);
        let into = cgroup.as_ref().and_then(cgroup::Run::procs_fd);
        let spawned = match spawn::spawn(&spec.argv, &env, path.as_deref(), into) {
            Ok(s) => s,
            Err(e) => {
                if let Some(run) = cgroup {
                    let _ = run.remove();
                }
                return Err(e);
            }
        };
        if let Some(run) = cgroup.as_mut() {
            run.placed();
        }
        let pid = spawned.pid;
        let stdin = Some(pipe_file(spawned.stdin)?);
        let stdout = Some(pipe_file(spawned.stdout)?);
        let stderr = Some(pipe_file(spawned.stderr)?);
        let mut c = Child {
            pid,
            stdin,
            stdin_buf: spec.stdin,
            stdin_pos: 0,
            stdout,
            stderr,
            out: Capture::new(spec.max_output),
            err: Tail::new(STDERR_TAIL_BYTES),
            cgroup,
        };
        if c.write_stdin() {
            // All written (or the agent closed its end): EOF now, no loop turn needed.
            c.stdin = None;
            c.stdin_buf = Vec::new();
        }
        Ok(c)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn fd(&self, pipe: Pipe) -> Option<RawFd> {
        let f = match pipe {
            Pipe::Stdin => &self.stdin,
            Pipe::Stdout => &self.stdout,
            Pipe::Stderr => &self.stderr,
        };
        f.as_ref().map(File::as_raw_fd)
    }

    /// Registers the open pipes; `token(pipe)` names each.
    pub fn register(&self, registry: &Registry, token: impl Fn(Pipe) -> Token) -> io::Result<()> {
        for pipe in Pipe::ALL {
            if let Some(fd) = self.fd(pipe) {
                let interest = if pipe == Pipe::Stdin { Interest::WRITABLE } else { Interest::READABLE };
                registry.register(&mut SourceFd(&fd), token(pipe), interest)?;
            }
        }
        Ok(())
    }

    fn close(&mut self, pipe: Pipe, registry: &Registry) {
        if let Some(fd) = self.fd(pipe) {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        match pipe {
            Pipe::Stdin => self.stdin = None,
            Pipe::Stdout => self.stdout = None,
            Pipe::Stderr => self.stderr = None,
        }
    }

    /// Writes as much of the description as the pipe takes; closes stdin when all is written
    /// or the agent has closed its end (EPIPE: SIGPIPE is ignored by the daemon).
    fn write_stdin(&mut self) -> bool {
        let Some(f) = self.stdin.as_mut() else {
            return true;
        };
        while self.stdin_pos < self.stdin_buf.len() {
            match f.write(&self.stdin_buf[self.stdin_pos..]) {
                Ok(0) => break,
                Ok(n) => self.stdin_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => break,
            }
        }
        true
    }

    /// Handles readiness of one pipe; `scratch` is a reusable read buffer.
    pub fn on_ready(&mut self, pipe: Pipe, registry: &Registry, scratch: &mut [u8]) {
        match pipe {
            Pipe::Stdin => {
                if self.write_stdin() {
                    self.close(Pipe::Stdin, registry);
                    self.stdin_buf = Vec::new();
                }
            }
            Pipe::Stdout | Pipe::Stderr => {
                if self.drain(pipe, scratch) {
                    self.close(pipe, registry);
                }
            }
        }
    }

    /// Reads until the pipe would block; true at end of file or on error.
    fn drain(&mut self, pipe: Pipe, scratch: &mut [u8]) -> bool {
        loop {
            let file = match pipe {
                Pipe::Stdout => self.stdout.as_mut(),
                Pipe::Stderr => self.stderr.as_mut(),
                Pipe::Stdin => None,
            };
            let Some(file) = file else { return false };
            match file.read(scratch) {
                Ok(0) => return true,
                Ok(n) => match pipe {
                    Pipe::Stdout => self.out.push(&scratch[..n]),
                    _ => self.err.push(&scratch[..n]),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Sends `signal` to the agent's whole process group.
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-self.pid, signal);
        }
    }

    /// A stop sequence's signal: SIGTERM to the process group; SIGKILL to the group and, when
    /// it has one, its whole cgroup ([`Child::kill_all`]).
    pub fn send(&self, signal: supervise::Signal) {
        match signal {
            supervise::Signal::Term => self.signal_group(libc::SIGTERM),
            supervise::Signal::Kill => self.kill_all(),
        }
    }

    /// SIGKILL to the agent's process group and, when it has one, its whole cgroup.
    pub fn kill_all(&self) {
        self.signal_group(libc::SIGKILL);
        if let Some(run) = &self.cgroup {
            let _ = run.kill();
        }
    }

    /// Where its run's cgroup is, when it has one.
    pub fn cgroup_path(&self) -> Option<&std::path::Path> {
        self.cgroup.as_ref().map(cgroup::Run::path)
    }

    /// Its run's cgroup, for [`Containment::ended`].
    pub(crate) fn take_cgroup(&mut self) -> Option<cgroup::Run> {
        self.cgroup.take()
    }

    /// If the agent has exited: kills whatever is left of its process group (before reaping,
    /// so the group id cannot have been reused), reaps it, and returns how it ended.
    pub fn try_exit(&mut self) -> io::Result<Option<Exit>> {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: info is a valid pointer for the duration of the call.
        if unsafe { libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled info (or left it zeroed: si_pid 0 means still running).
        if unsafe { info.si_pid() } == 0 {
            return Ok(None);
        }
        self.signal_group(libc::SIGKILL);
        let mut status = 0;
        loop {
            // SAFETY: status is a valid pointer; the child has exited, so this does not block.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(Some(ExitStatus::from_raw(status).into()))
    }

    /// After the exit: reads what is left in the pipes (the agent can write no more),
    /// closes them, and returns the output.
    pub fn finish(mut self, registry: &Registry, scratch: &mut [u8]) -> Captured {
        for pipe in [Pipe::Stdout, Pipe::Stderr] {
            self.drain(pipe, scratch);
        }
        for pipe in Pipe::ALL {
            self.close(pipe, registry);
        }
        Captured {
            stdout_truncated: self.out.truncated(),
            stdout_bytes: self.out.total(),
            stderr_tail: self.err.text(),
            last_object: self.out.last_object(),
            stdout: self.out.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests;
