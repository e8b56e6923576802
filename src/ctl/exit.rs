//! Exit statuses of `watcherctl` (sysexits.h where one fits), and the error that carries one.
//! watcherctl(1) lists them; scripts rely on them, so they never change meaning.

use std::fmt;
use std::io;

/// Done; for `submit --wait` and `result`: the task completed.
pub const OK: u8 = 0;
/// The task failed (`submit --wait`, `result`); `status --check`: a worker is unhealthy.
pub const TASK_FAILED: u8 = 1;
/// Bad command line, or a task that is not valid (clap uses 2 too).
pub const USAGE: u8 = 2;
/// EX_DATAERR: refused as asked: the task id is taken, or a dead letter cannot be retried;
/// `spool import|export`: records were left where they were (the other side has others).
pub const REFUSED: u8 = 65;
/// EX_NOINPUT: no such result or dead letter.
pub const NOT_FOUND: u8 = 66;
/// EX_UNAVAILABLE: no such worker, or no worker reading its pipe.
pub const NO_WORKER: u8 = 69;
/// EX_IOERR: a file or folder could not be read or written.
pub const IO: u8 = 74;
/// EX_TEMPFAIL: `--wait-timeout` passed before the result came; `spool import|export`: a
/// worker runs on the side the work would leave (stop it, and run it again).
pub const TIMED_OUT: u8 = 75;
/// EX_CONFIG: a bad setting (the same one-line message as the daemons).
pub const CONFIG: u8 = 78;

/// Why a command stops early: an exit status and one line for stderr. An empty message
/// prints nothing (a closed stdout: `watcherctl … | head` is not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub code: u8,
    pub message: String,
}

impl CtlError {
    pub fn new(code: u8, message: impl Into<String>) -> CtlError {
        CtlError { code, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> CtlError {
        CtlError::new(USAGE, message)
    }

    /// A file-system error, with what was being done.
    pub fn io(what: impl fmt::Display, e: &io::Error) -> CtlError {
        CtlError::new(IO, format!("{what}: {e}"))
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Writing to stdout: a closed pipe ends the command quietly with status 0.
impl From<io::Error> for CtlError {
    fn from(e: io::Error) -> CtlError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CtlError::new(OK, "")
        } else {
            CtlError::io("cannot write to standard output", &e)
        }
    }
}

/// A backend's failure: a file or folder (a key) that could not be read or written.
impl From<crate::spool::Error> for CtlError {
    fn from(e: crate::spool::Error) -> CtlError {
        CtlError::new(IO, e.to_string())
    }
}

pub type CtlResult = Result<u8, CtlError>;
