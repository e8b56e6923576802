//! `watcherctl` run as a script would: its output and exit status, a hang failing the test.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::util::*;

pub const CTL: &str = env!("CARGO_BIN_EXE_watcherctl");

/// What one run of watcherctl did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts the exit status, showing everything when it differs.
    pub fn expect(self, code: i32) -> Ran {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }
}

/// Runs `watcherctl --root ROOT ARGS…` with `input` on stdin.
pub fn ctl_with_input(root: &Root, args: &[&str], input: &str) -> Ran {
    let mut child = Command::new(CTL)
        .arg("--root")
        .arg(root.path())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watcherctl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    finish(child)
}

/// Collects a watcherctl's output and exit status; one that has not returned within PATIENCE
/// is killed and fails the test (a hang is a failure, not a stuck test run).
pub fn finish(mut child: std::process::Child) -> Ran {
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "watcherctl did not return within {PATIENCE:?}; stderr: {}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

pub fn ctl(root: &Root, args: &[&str]) -> Ran {
    ctl_with_input(root, args, "")
}

/// A generous `--wait-timeout`, so a broken wait fails the test instead of hanging it.
pub fn patience() -> String {
    PATIENCE.as_secs().to_string()
}
