//! An HTTP endpoint in a daemon's loop: the sockets systemd passed, or the one the daemon
//! bound itself (whose unix socket file goes away at exit), served by one [`Server`] on the
//! loop's tokens for HTTP.

use std::path::PathBuf;

use mio::Token;

use super::{Limits, Server};
use crate::sys::socket::{Addr, Listener};

/// Listening sockets: tokens 8 to 15, between a loop's own sources and its children's pipes.
pub const HTTP_LISTEN: Token = Token(8);
/// Most sockets served (LISTEN_FDS beyond this is a configuration error).
pub const MAX_LISTENERS: usize = 8;
/// Connections: tokens from here up, above any child's pipe.
pub const HTTP_CONN: Token = Token(1 << 20);

/// The sockets a daemon serves and the server on them.
pub struct Endpoint {
    pub server: Server,
    /// A unix socket file this process bound (not one systemd passed): removed at exit.
    bound_path: Option<PathBuf>,
}

impl Endpoint {
    /// Serves the sockets systemd passed.
    pub fn passed(sockets: Vec<Listener>) -> Result<Endpoint, String> {
        if sockets.len() > MAX_LISTENERS {
            return Err(format!(
                "LISTEN_FDS: {} sockets passed, at most {MAX_LISTENERS} are served",
                sockets.len()
            ));
        }
        Ok(Endpoint { server: server(sockets), bound_path: None })
    }

    /// Binds `addr`, which the setting `var` (`NAME=value`) gave; `in_use` is what to say when
    /// another process holds the address.
    pub fn bind(addr: Addr, var: &str, in_use: &str) -> Result<Endpoint, String> {
        let socket = Listener::bind(&addr).map_err(|e| {
            let why =
                if e.kind() == std::io::ErrorKind::AddrInUse { in_use.to_string() } else { e.to_string() };
            format!("{var}: cannot listen on {addr}: {why}")
        })?;
        let bound_path = match addr {
            Addr::Unix(p) => Some(p),
            Addr::Tcp(_) => None,
        };
        Ok(Endpoint { server: server(vec![socket]), bound_path })
    }

    /// At exit: the unix socket file this process bound goes with it.
    pub fn close(self) {
        if let Some(path) = self.bound_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn server(sockets: Vec<Listener>) -> Server {
    Server::new(sockets, HTTP_LISTEN, HTTP_CONN, Limits::default())
}
