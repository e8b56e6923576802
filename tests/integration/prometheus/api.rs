//! A real Prometheus for the tests: started on a free port with its own storage in a temp
//! folder, asked through its HTTP API (/api/v1/…) with a small blocking client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::util::*;

pub struct Prometheus {
    child: Child,
    pub port: u16,
    log: std::path::PathBuf,
}

/// A port free a moment ago (Prometheus cannot tell the port it got for port 0).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("address").port()
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Starts `binary` with `config` (a prometheus.yml) and storage under `dir`; waits until it
    /// is ready. A port taken between its choice and Prometheus's bind is chosen again.
    pub fn start(binary: &Path, config: &Path, dir: &Path) -> Prometheus {
        for _ in 0..5 {
            let port = free_port();
            let log = dir.join(format!("prometheus-{port}.log"));
            let child = Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log"))
                .spawn()
                .expect("start prometheus");
            let mut p = Prometheus { child, port, log };
            let ready = wait_for("prometheus to answer /-/ready or exit", || {
                if let Ok(Some(_)) = p.child.try_wait() {
                    return Some(false);
                }
                p.get("/-/ready").filter(|(status, _)| *status == 200).map(|_| true)
            });
            if ready {
                return p;
            }
            eprintln!("prometheus on port {port} exited: {}", p.log_text());
        }
        panic!("prometheus did not start");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` over HTTP/1.0 (no chunking, the server closes): status and body.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).ok()?;
        let a = crate::support::scrape::parse_answer(&bytes);
        Some((a.status, a.body))
    }

    /// GET an /api/v1 path whose answer must be `"status": "success"`; its `data`.
    pub fn api(&self, path: &str) -> Value {
        let (status, body) = self.get(path).unwrap_or_else(|| panic!("GET {path}: no answer"));
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
        assert!(status == 200 && v["status"] == "success", "GET {path}: {status} {body}");
        v["data"].clone()
    }

    /// The result of the instant query `expr`: a vector's samples (labels, value), or a
    /// scalar as one sample without labels. A bad expression fails the test.
    pub fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)));
        let value = |v: &Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| (s["metric"].clone(), value(&s["value"])))
                .collect(),
            Some("scalar") => vec![(Value::Null, value(&data["result"]))],
            other => panic!("{expr}: a result of type {other:?}"),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
