//! `watcherctl` against real workers: the binary run as a script would, its output and exit
//! statuses checked.

mod dlq;
mod status;
mod submit;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::*;

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
    let out = child.wait_with_output().expect("watcherctl output");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ctl(root: &Root, args: &[&str]) -> Ran {
    ctl_with_input(root, args, "")
}

/// A generous `--wait-timeout`, so a broken wait fails the test instead of hanging it.
pub fn patience() -> String {
    PATIENCE.as_secs().to_string()
}
