//! Where an HTTP endpoint listens: the sockets systemd passed (socket activation), or an
//! address bound here (a TCP `ADDR:PORT` or a unix socket path).
//!
//! This module opens listening sockets and accepts on them; it knows nothing of HTTP. Both
//! daemons use it: the worker for its metrics, the listener for the host's scrape target.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use nix::sys::socket::{getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike};

/// An address to bind: `ADDR:PORT` (port 0: any free port) or an absolute unix socket path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Addr {
    /// Parses `127.0.0.1:9090`, `[::]:9090` or `/run/x.sock`; `%i` in a path is replaced by
    /// `instance` (so one shared setting gives each worker its own socket).
    pub fn parse(s: &str, instance: &str) -> Option<Addr> {
        let s = s.trim();
        if s.starts_with('/') {
            return Some(Addr::Unix(PathBuf::from(s.replace("%i", instance))));
        }
        s.parse().map(Addr::Tcp).ok()
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A listening stream socket, TCP or unix, non-blocking.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted connection, non-blocking and close-on-exec.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `addr`. A unix socket path left by a dead process (nobody accepts on it) is
    /// replaced; one in use is `AddrInUse`.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Tcp(a) => TcpListener::bind(*a).map(Listener::Tcp),
            Addr::Unix(p) => match UnixListener::bind(p) {
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && is_stale(p) => {
                    std::fs::remove_file(p)?;
                    UnixListener::bind(p).map(Listener::Unix)
                }
                r => r.map(Listener::Unix),
            },
        }
    }

    /// The address actually bound (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or_else(|e| format!("tcp ({e})"), |a| a.to_string()),
            Listener::Unix(l) => match l.local_addr() {
                Ok(a) => a.as_pathname().map_or_else(|| "unix (unnamed)".into(), |p| p.display().to_string()),
                Err(e) => format!("unix ({e})"),
            },
        }
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => registry.register(l, token, Interest::READABLE),
            Listener::Unix(l) => registry.register(l, token, Interest::READABLE),
        }
    }

    /// Takes over a listening stream socket passed by the service manager. Anything else
    /// (a datagram socket, a socket not listening, a FIFO) is refused with what it is.
    ///
    /// # Safety
    /// `fd` must be open and owned by nobody else in this process.
    unsafe fn from_passed(fd: RawFd) -> Result<Listener, String> {
        let what = |e: nix::Error| format!("passed fd {fd}: {e}");
        // SAFETY: `fd` is open (the caller's promise) for the whole of this function.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let kind = getsockopt(&borrowed, sockopt::SockType).map_err(what)?;
        let listening = getsockopt(&borrowed, sockopt::AcceptConn).map_err(what)?;
        if kind != SockType::Stream || !listening {
            return Err(format!("passed fd {fd} is not a listening stream socket (ListenStream=)"));
        }
        let family = getsockname::<nix::sys::socket::SockaddrStorage>(fd).map_err(what)?.family();
        let listener = match family {
            Some(AddressFamily::Unix) => {
                // SAFETY: the caller hands over `fd`, just checked to be a listening socket.
                let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
                l.set_nonblocking(true).map_err(|e| format!("passed fd {fd}: {e}"))?;
                Listener::Unix(UnixListener::from_std(l))
            }
            Some(AddressFamily::Inet | AddressFamily::Inet6) => {
                // SAFETY: as above.
                let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
                l.set_nonblocking(true).map_err(|e| format!("passed fd {fd}: {e}"))?;
                Listener::Tcp(TcpListener::from_std(l))
            }
            other => return Err(format!("passed fd {fd} has an unsupported address family {other:?}")),
        };
        Ok(listener)
    }
}

/// Whether the unix socket at `p` is left over: a socket nobody accepts on.
fn is_stale(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket());
    is_socket
        && std::os::unix::net::UnixStream::connect(p)
            .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
}

/// The listening sockets passed by the service manager (sd_listen_fds(3)): none unless
/// LISTEN_PID names this process, whatever LISTEN_FDS says. The fds are made close-on-exec,
/// and LISTEN_* are removed from the environment, so no agent inherits them.
pub fn from_systemd() -> Result<Vec<Listener>, String> {
    let fds = sd_notify::listen_fds().map_err(|e| format!("LISTEN_FDS/LISTEN_PID: {e}"))?;
    let mut listeners = Vec::new();
    for fd in fds {
        // SAFETY: systemd handed these fds to this process (LISTEN_PID was checked); nothing
        // else in it has taken them.
        listeners.push(unsafe { Listener::from_passed(fd)? });
    }
    Ok(listeners)
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    /// Half-closes the sending side: the peer reads the end of the response.
    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(Addr::parse("127.0.0.1:9090", "m"), Some(Addr::Tcp("127.0.0.1:9090".parse().unwrap())));
        assert_eq!(Addr::parse("[::]:0", "m"), Some(Addr::Tcp("[::]:0".parse().unwrap())));
        assert_eq!(Addr::parse("/run/ww/%i.sock", "marie"), Some(Addr::Unix("/run/ww/marie.sock".into())));
        assert_eq!(Addr::parse("localhost:9090", "m"), None);
        assert_eq!(Addr::parse("9090", "m"), None);
        assert_eq!(Addr::parse("run/x.sock", "m"), None);
    }

    #[test]
    fn stale_unix_socket_is_replaced_and_a_live_one_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let addr = Addr::Unix(path.clone());
        drop(Listener::bind(&addr).unwrap());
        assert!(path.exists(), "a dropped listener leaves its file");
        let live = Listener::bind(&addr).expect("stale socket replaced");
        let e = Listener::bind(&addr).expect_err("in use");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(live.local_addr(), path.display().to_string());
    }
}
