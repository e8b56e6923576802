//! Fatal errors of the daemons and their exit codes (sysexits.h, as systemd units expect).

use std::fmt;

/// EX_CONFIG: a bad setting. The units carry RestartPreventExitStatus=78.
pub const EX_CONFIG: u8 = 78;
/// EX_TEMPFAIL: another instance holds the worker's lock.
pub const EX_TEMPFAIL: u8 = 75;
/// EX_USAGE: bad command line.
pub const EX_USAGE: u8 = 64;
/// EX_SOFTWARE: anything else.
pub const EX_SOFTWARE: u8 = 70;

/// Why a daemon stopped with an error. The message is one line, ready to print.
#[derive(Debug)]
pub enum Fatal {
    Config(String),
    Locked(String),
    Other(String),
}

impl Fatal {
    pub fn exit_code(&self) -> u8 {
        match self {
            Fatal::Config(_) => EX_CONFIG,
            Fatal::Locked(_) => EX_TEMPFAIL,
            Fatal::Other(_) => EX_SOFTWARE,
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fatal::Config(m) | Fatal::Locked(m) | Fatal::Other(m) => f.write_str(m),
        }
    }
}

impl From<crate::config::ConfigError> for Fatal {
    fn from(e: crate::config::ConfigError) -> Fatal {
        Fatal::Config(e.0)
    }
}

impl From<crate::spool::fs::OpenError> for Fatal {
    fn from(e: crate::spool::fs::OpenError) -> Fatal {
        use crate::spool::fs::OpenError;
        match e {
            OpenError::Folder(m) => Fatal::Config(m),
            OpenError::Locked(m) => Fatal::Locked(m),
            OpenError::Io(m) => Fatal::Other(m),
        }
    }
}
