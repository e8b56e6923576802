//! The errors of the spool's backends, the same whatever the backend is (folders, memory, an
//! engine), so the daemons and watcherctl map them to exit statuses and log lines without
//! knowing which one failed.

use std::fmt;
use std::io;

/// Why a backend could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// A setting, or what it names (a folder that is not one, or that may not be used; a
    /// server), must change: a configuration error, exit status 78.
    Config(String),
    /// Another process holds what only one may hold (a worker's lock, the listener's).
    Locked(String),
    /// Anything else; it may pass.
    Io(String),
}

impl OpenError {
    /// `message` about `e`: a configuration error when an operator must change a path or its
    /// permissions, else one that may pass (see [`crate::error::needs_operator`]).
    pub fn of_io(message: String, e: &io::Error) -> OpenError {
        if crate::error::needs_operator(e) {
            OpenError::Config(message)
        } else {
            OpenError::Io(message)
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Config(m) | OpenError::Locked(m) | OpenError::Io(m) => f.write_str(m),
        }
    }
}

/// An operation of a backend that failed: what was being done, where, and why. Its text is
/// one line, `<doing> <at>: <cause>` ("cannot read /var/lib/worker-watcher/results/m/t.json:
/// Permission denied"), ready for a log line or watcherctl's stderr.
#[derive(Debug)]
pub struct Error {
    /// What was being done: `cannot read`, `cannot create`, …
    pub doing: String,
    /// Where: a file or folder, a key.
    pub at: String,
    pub cause: io::Error,
}

impl Error {
    pub fn new(doing: impl Into<String>, at: impl fmt::Display, cause: io::Error) -> Error {
        Error { doing: doing.into(), at: at.to_string(), cause }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.doing, self.at, self.cause)
    }
}

impl std::error::Error for Error {}
