//! The request parser's edge cases, and the server driven by a real mio loop in-process.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::*;
use crate::sys::socket::{Addr, Listener};

fn req(bytes: &[u8]) -> Request {
    match parse(bytes, false) {
        Parse::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn status(bytes: &[u8], full: bool) -> Option<u16> {
    match parse(bytes, full) {
        Parse::Reject(r) => Some(r.status),
        Parse::Incomplete => None,
        Parse::Request(_) => Some(200),
    }
}

#[test]
fn request_line_and_query() {
    let r = req(b"GET /metrics?name[]=x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("GET", "/metrics", Some("name[]=x"))
    );
    let r = req(b"HEAD /healthz HTTP/1.0\r\n\r\n");
    assert!(r.is_head());
    assert_eq!(r.read_only(), None);
    let r = req(b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    let resp = r.read_only().expect("405");
    assert_eq!(resp.status, 405);
    assert!(resp.headers.contains(&("Allow", "GET, HEAD".into())));
}

#[test]
fn incomplete_until_the_blank_line() {
    assert_eq!(status(b"", false), None);
    assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHost: a\r\n", false), None);
    // The same bytes when no more can come: too large.
    assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHost: a\r\n", true), Some(431));
    // Bare LF line ends are tolerated, as by most servers.
    assert_eq!(status(b"GET / HTTP/1.1\nHost: a\n\n", false), Some(200));
}

#[test]
fn malformed_heads_are_400() {
    for bad in [
        &b"\x00\x01\x02\xff\r\n\r\n"[..],
        b"GET /metrics HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET /metrics\r\n\r\n",
        b"GET http://example.org/metrics HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
        b"G\x7fET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(status(bad, false), Some(400), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn too_many_headers_is_431() {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..message::MAX_HEADERS {
        head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(status(&head, false), Some(431));
}

#[test]
fn response_bytes() {
    let r = Response::text(200, "ok").with_header("X-Evil", "a\r\nSet-Cookie: b");
    let wire = String::from_utf8(r.to_bytes(false)).unwrap();
    assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(wire.contains("Content-Length: 3\r\nConnection: close\r\n"));
    assert!(wire.contains("X-Evil: aSet-Cookie: b\r\n"), "no header injection: {wire}");
    assert!(wire.ends_with("\r\n\r\nok\n"));
    let head = String::from_utf8(r.to_bytes(true)).unwrap();
    assert!(head.ends_with("\r\n\r\n") && head.contains("Content-Length: 3"));
}

/// A server on a unix socket in a temp folder, polled by the test thread.
struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    poll: Poll,
    server: Server,
}

impl Rig {
    fn new(limits: Limits) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = Listener::bind(&Addr::Unix(path.clone())).unwrap();
        let poll = Poll::new().unwrap();
        let mut server = Server::new(vec![listener], Token(2), Token(100), limits);
        server.register(poll.registry()).unwrap();
        Rig { _dir: dir, path, poll, server }
    }

    /// One loop turn: events, then time-outs.
    fn turn(&mut self) {
        let mut events = Events::with_capacity(64);
        let timeout = Some(Duration::from_millis(20));
        self.poll.poll(&mut events, timeout).unwrap();
        let mut handler = |r: &Request| match r.path.as_str() {
            "/hello" => r.read_only().unwrap_or_else(|| Response::text(200, "hello")),
            _ => Response::not_found(),
        };
        for e in events.iter() {
            assert!(self.server.owns(e.token()));
            self.server.ready(self.poll.registry(), e.token(), &mut handler);
        }
        self.server.expire(self.poll.registry(), Instant::now());
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.path).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// Turns the loop until `s` has been answered and closed; returns the answer.
    fn answer(&mut self, s: &mut UnixStream) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        loop {
            self.turn();
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
            assert!(Instant::now() < deadline, "no answer");
        }
    }
}

#[test]
fn serves_routes_and_refuses_methods() {
    let mut rig = Rig::new(Limits::default());
    let mut s = rig.connect();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let a = rig.answer(&mut s);
    assert!(a.starts_with("HTTP/1.1 200 OK") && a.ends_with("hello\n"), "{a}");
    let mut s = rig.connect();
    s.write_all(b"DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let a = rig.answer(&mut s);
    assert!(a.starts_with("HTTP/1.1 405") && a.contains("Allow: GET, HEAD\r\n"), "{a}");
    let mut s = rig.connect();
    s.write_all(b"HEAD /nope HTTP/1.0\r\n\r\n").unwrap();
    let a = rig.answer(&mut s);
    assert!(a.starts_with("HTTP/1.1 404") && a.ends_with("\r\n\r\n"), "{a}");
    assert_eq!(rig.server.stats().responses, 3);
}

#[test]
fn request_split_in_pieces_and_oversized_head() {
    let mut rig = Rig::new(Limits { max_request_bytes: 1024, ..Limits::default() });
    let mut s = rig.connect();
    s.write_all(b"GET /hel").unwrap();
    rig.turn();
    s.write_all(b"lo HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(rig.answer(&mut s).starts_with("HTTP/1.1 200"));
    let mut s = rig.connect();
    s.write_all(&[1u8; 4096]).unwrap_or(());
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.resize(2000, b'y');
    let mut s2 = rig.connect();
    s2.write_all(&big).unwrap();
    assert!(rig.answer(&mut s).starts_with("HTTP/1.1 400"));
    assert!(rig.answer(&mut s2).starts_with("HTTP/1.1 431"));
    assert_eq!(rig.server.stats().rejected, 2);
}

#[test]
fn the_oldest_connection_makes_room_and_idle_ones_time_out() {
    let limits = Limits { max_connections: 4, request_timeout: Duration::ZERO, ..Limits::default() };
    let mut rig = Rig::new(Limits { request_timeout: Duration::from_secs(3600), ..limits });
    let idle: Vec<UnixStream> = (0..10).map(|_| rig.connect()).collect();
    let mut s = rig.connect();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(rig.answer(&mut s).starts_with("HTTP/1.1 200"));
    assert!(rig.server.stats().evicted >= 7, "{:?}", rig.server.stats());
    assert!(rig.server.next_deadline().is_some());
    drop(idle);
    // With no time allowed, a silent connection is closed at the next expiry.
    let mut rig = Rig::new(limits);
    let mut s = rig.connect();
    assert_eq!(rig.answer(&mut s), "");
    assert_eq!(rig.server.stats().timed_out, 1);
    assert_eq!(rig.server.next_deadline(), None);
}
