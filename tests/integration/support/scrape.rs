//! Test helpers for the metrics endpoint: a blocking HTTP client over a unix socket or TCP,
//! a reader of the text exposition, and `promtool check metrics`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::util::*;

/// Where an endpoint listens.
#[derive(Clone, Debug)]
pub enum Target {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// A response: status, head (lower-cased), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

pub trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

impl Target {
    pub fn connect(&self) -> Box<dyn Conn> {
        match self {
            Target::Unix(p) => {
                let s = UnixStream::connect(p).expect("connect to the unix socket");
                s.set_read_timeout(Some(PATIENCE)).expect("timeout");
                Box::new(s)
            }
            Target::Tcp(a) => {
                let s = TcpStream::connect(a).expect("connect over TCP");
                s.set_read_timeout(Some(PATIENCE)).expect("timeout");
                Box::new(s)
            }
        }
    }

    /// Sends `raw` and reads the answer until the server closes.
    pub fn exchange(&self, raw: &[u8]) -> Answer {
        let mut c = self.connect();
        c.write_all(raw).expect("send the request");
        let mut bytes = Vec::new();
        c.read_to_end(&mut bytes).expect("read the answer");
        parse_answer(&bytes)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.exchange(format!("GET {path} HTTP/1.1\r\nHost: test\r\nUser-Agent: it\r\n\r\n").as_bytes())
    }

    /// GET /metrics, which must answer 200, as samples.
    pub fn scrape(&self) -> Samples {
        let a = self.get("/metrics");
        assert_eq!(a.status, 200, "scrape: {a:?}");
        assert!(a.head.contains("content-type: text/plain; version=0.0.4"), "{}", a.head);
        Samples::parse(&a.body)
    }

    /// Scrapes until `ready` holds. Outcomes are counted when the loop collects them from the
    /// spool's writer, a moment after their files appear.
    pub fn scrape_when(&self, what: &str, ready: impl Fn(&Samples) -> bool) -> Samples {
        crate::support::util::wait_for(what, || Some(self.scrape()).filter(|s| ready(s)))
    }
}

pub fn parse_answer(bytes: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_ascii_lowercase(), body: body.to_string() }
}

/// The samples of a text exposition: `name{labels}` → value, and the raw text.
pub struct Samples {
    pub map: BTreeMap<String, f64>,
    pub text: String,
}

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let map = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Samples { map, text: text.to_string() }
    }

    /// The value of one series, which must exist.
    pub fn get(&self, series: &str) -> f64 {
        match self.map.get(series) {
            Some(v) => *v,
            None => panic!("no series {series} in:\n{}", self.text),
        }
    }
}

/// `promtool check metrics` on `text`. Without promtool it is skipped with a note, except
/// under CI (CI=true), where .ci/run installs it (Debian's `prometheus`).
pub fn promtool_check(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not run ({e}); install Debian's prometheus package to run it");
            return;
        }
        Err(e) => panic!("promtool is needed under CI: {e}"),
    };
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}
