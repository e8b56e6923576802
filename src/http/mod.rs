//! A small, strict HTTP/1.1 server for read-only endpoints, driven by the daemon's own mio
//! loop: it never blocks and never sleeps. Its time-outs are deadlines the loop folds into its
//! poll timeout ([`Server::next_deadline`], [`Server::expire`]).
//!
//! One request per connection (`Connection: close` after each response). What a client can
//! cost is bounded: at most `max_connections` connections (a new one evicts the oldest), at
//! most `max_request_bytes` buffered per connection, a fixed time to send the request head
//! and another to read the response. It is not a general web server: no bodies, no
//! keep-alive, no TLS.

mod endpoint;
mod message;
#[cfg(test)]
mod tests;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::event::Source as _;
use mio::{Interest, Registry, Token};

use crate::sys::socket::{Listener, Stream};
pub use endpoint::Endpoint;
pub use message::{parse, Parse, Request, Response, JSON, TEXT};

/// What one client may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_request_bytes: usize,
    /// From accept to a complete request head (a client dribbling bytes gains nothing).
    pub request_timeout: Duration,
    /// To take the whole response.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            max_request_bytes: 8192,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Answers one request.
pub trait Handler {
    fn handle(&mut self, req: &Request) -> Response;
}

impl<F: FnMut(&Request) -> Response> Handler for F {
    fn handle(&mut self, req: &Request) -> Response {
        self(req)
    }
}

/// Counters of what the server did, for the daemon's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    pub responses: u64,
    /// Refused requests (400, 431).
    pub rejected: u64,
    /// Closed to make room for a newer connection.
    pub evicted: u64,
    pub timed_out: u64,
}

struct Conn {
    stream: Stream,
    accepted: Instant,
    deadline: Instant,
    phase: Phase,
}

enum Phase {
    Reading {
        input: Vec<u8>,
    },
    Writing {
        bytes: Vec<u8>,
        sent: usize,
    },
    /// The response is sent and our side shut down; what the client still sends is read and
    /// dropped until it closes, so that closing never resets the connection before the
    /// client has read the response (a client that sent too much gets its 400 or 431).
    Lingering {
        dropped: usize,
    },
}

/// Bytes read and dropped after a response before the connection is closed anyway.
const LINGER_BYTES: usize = 256 * 1024;
/// Time given to the client to close after its response.
const LINGER_TIME: Duration = Duration::from_secs(2);

pub struct Server {
    listeners: Vec<Listener>,
    listen_base: usize,
    conn_base: usize,
    conns: Vec<Option<Conn>>,
    limits: Limits,
    stats: Stats,
}

/// Whether a connection is finished with.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Keep,
    Close,
}

impl Server {
    /// Listener `i` is token `listen_base + i`; connections take `max_connections` tokens
    /// from `conn_base`.
    pub fn new(listeners: Vec<Listener>, listen_base: Token, conn_base: Token, limits: Limits) -> Server {
        let conns = (0..limits.max_connections.max(1)).map(|_| None).collect();
        Server {
            listeners,
            listen_base: listen_base.0,
            conn_base: conn_base.0,
            conns,
            limits,
            stats: Stats::default(),
        }
    }

    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            l.register(registry, Token(self.listen_base + i))?;
        }
        Ok(())
    }

    /// Where it listens, for the log and the heartbeat.
    pub fn addresses(&self) -> Vec<String> {
        self.listeners.iter().map(Listener::local_addr).collect()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn owns(&self, token: Token) -> bool {
        let t = token.0;
        (self.listen_base..self.listen_base + self.listeners.len()).contains(&t)
            || (self.conn_base..self.conn_base + self.conns.len()).contains(&t)
    }

    /// Handles readiness of one of its tokens.
    pub fn ready(&mut self, registry: &Registry, token: Token, handler: &mut impl Handler) {
        let t = token.0;
        if (self.listen_base..self.listen_base + self.listeners.len()).contains(&t) {
            self.accept_all(registry, t - self.listen_base, handler);
        } else if let Some(slot) = t.checked_sub(self.conn_base).filter(|s| *s < self.conns.len()) {
            self.drive(registry, slot, handler);
        }
    }

    fn accept_all(&mut self, registry: &Registry, index: usize, handler: &mut impl Handler) {
        loop {
            let stream = match self.listeners[index].accept() {
                Ok(s) => s,
                // A connection reset while it waited: the next may be fine.
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) =>
                {
                    continue
                }
                // WouldBlock: all taken. Anything else (EMFILE…): the next connection brings
                // a new event.
                Err(_) => return,
            };
            self.stats.accepted += 1;
            let slot = match self.conns.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    let oldest = self.oldest();
                    self.close(registry, oldest);
                    self.stats.evicted += 1;
                    oldest
                }
            };
            let now = Instant::now();
            let mut conn = Conn {
                stream,
                accepted: now,
                deadline: now + self.limits.request_timeout,
                phase: Phase::Reading { input: Vec::new() },
            };
            let token = Token(self.conn_base + slot);
            if conn.stream.register(registry, token, Interest::READABLE).is_err() {
                continue;
            }
            self.conns[slot] = Some(conn);
            // The request is often there already: answer it in this turn.
            self.drive(registry, slot, handler);
        }
    }

    fn oldest(&self) -> usize {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.accepted, i)))
            .min()
            .map_or(0, |(_, i)| i)
    }

    fn close(&mut self, registry: &Registry, slot: usize) {
        if let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) {
            let _ = c.stream.deregister(registry);
        }
    }

    fn drive(&mut self, registry: &Registry, slot: usize, handler: &mut impl Handler) {
        let limits = self.limits;
        let token = Token(self.conn_base + slot);
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let answered = matches!(conn.phase, Phase::Lingering { .. });
        let next = match &mut conn.phase {
            Phase::Reading { input } => match read_request(&mut conn.stream, input, limits.max_request_bytes)
            {
                Err(()) => Next::Close,
                Ok(Parse::Incomplete) => Next::Keep,
                Ok(Parse::Reject(resp)) => {
                    self.stats.rejected += 1;
                    conn.respond(&resp, false, registry, token, limits)
                }
                Ok(Parse::Request(req)) => {
                    let resp = handler.handle(&req);
                    conn.respond(&resp, req.is_head(), registry, token, limits)
                }
            },
            Phase::Writing { .. } => conn.write_out(registry, token),
            Phase::Lingering { dropped } => linger(&mut conn.stream, dropped),
        };
        if !answered && matches!(conn.phase, Phase::Lingering { .. }) {
            self.stats.responses += 1;
        }
        if next == Next::Close {
            self.close(registry, slot);
        }
    }

    /// The earliest time-out of a connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Closes the connections whose time is up.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_ref().filter(|c| now >= c.deadline) else {
                continue;
            };
            if !matches!(c.phase, Phase::Lingering { .. }) {
                self.stats.timed_out += 1;
            }
            self.close(registry, slot);
        }
    }
}

/// Reads what is there into `input`. `Err`: the peer closed or failed before a whole head.
fn read_request(stream: &mut Stream, input: &mut Vec<u8>, max: usize) -> Result<Parse, ()> {
    let mut chunk = [0u8; 2048];
    loop {
        let room = max.saturating_sub(input.len());
        if room == 0 {
            return Ok(parse(input, true));
        }
        let want = room.min(chunk.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(()),
            Ok(n) => {
                input.extend_from_slice(&chunk[..n]);
                if let p @ (Parse::Request(_) | Parse::Reject(_)) = parse(input, false) {
                    return Ok(p);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(parse(input, false)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
}

/// Reads and drops what the client still sends, until it closes or has sent too much.
fn linger(stream: &mut Stream, dropped: &mut usize) -> Next {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                *dropped += n;
                if *dropped > LINGER_BYTES {
                    return Next::Close;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Next::Close,
        }
    }
}

impl Conn {
    fn respond(
        &mut self,
        resp: &Response,
        head: bool,
        registry: &Registry,
        token: Token,
        limits: Limits,
    ) -> Next {
        self.phase = Phase::Writing { bytes: resp.to_bytes(head), sent: 0 };
        self.deadline = Instant::now() + limits.write_timeout;
        let next = self.write_out(registry, token);
        if next == Next::Keep && self.stream.reregister(registry, token, Interest::WRITABLE).is_err() {
            return Next::Close;
        }
        next
    }

    /// Writes what the socket takes. Once all is sent, shuts down our side and lingers.
    fn write_out(&mut self, registry: &Registry, token: Token) -> Next {
        let Phase::Writing { bytes, sent } = &mut self.phase else {
            return Next::Close;
        };
        while *sent < bytes.len() {
            match self.stream.write(&bytes[*sent..]) {
                Ok(0) => return Next::Close,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        self.stream.shutdown_write();
        self.phase = Phase::Lingering { dropped: 0 };
        self.deadline = Instant::now() + LINGER_TIME;
        if self.stream.reregister(registry, token, Interest::READABLE).is_err() {
            return Next::Close;
        }
        // What the client sent beyond its request head may be there already.
        let mut dropped = 0;
        let next = linger(&mut self.stream, &mut dropped);
        self.phase = Phase::Lingering { dropped };
        next
    }
}
