//! Fatal errors of the daemons and their exit codes (sysexits.h, as systemd units expect).
//!
//! The same fault gives the same status in both daemons. 78 means that an operator must
//! change a setting (or what a setting names: a folder that is not one, or that the daemon
//! may not use), and nothing else: the units carry RestartPreventExitStatus=78, so systemd
//! does not restart on it. A fault that may pass (a host limit such as inotify watches or
//! open files, an I/O error, the agent's service unavailable) exits with a status that
//! Restart=on-failure restarts.

use std::fmt;
use std::io;

/// EX_CONFIG: a bad setting. The units carry RestartPreventExitStatus=78.
pub const EX_CONFIG: u8 = 78;
/// EX_TEMPFAIL: try again later: another instance holds the worker's lock, or the agent's
/// service is unavailable for now (AGENT_PREFLIGHT).
pub const EX_TEMPFAIL: u8 = 75;
/// EX_SOFTWARE: anything else, including the host's limits and I/O errors.
pub const EX_SOFTWARE: u8 = 70;

/// Why a daemon stopped with an error. The message is one line, ready to print.
#[derive(Debug)]
pub enum Fatal {
    Config(String),
    Locked(String),
    /// Something outside the daemon that should pass (the agent's service); try again later.
    Unavailable(String),
    Other(String),
}

impl Fatal {
    pub fn exit_code(&self) -> u8 {
        match self {
            Fatal::Config(_) => EX_CONFIG,
            Fatal::Locked(_) | Fatal::Unavailable(_) => EX_TEMPFAIL,
            Fatal::Other(_) => EX_SOFTWARE,
        }
    }

    /// `message` about an I/O error `e` at start-up: a configuration error when a setting (or
    /// the path it names) must change, else one that a restart may get past.
    pub fn io(message: String, e: &io::Error) -> Fatal {
        if needs_operator(e) {
            Fatal::Config(message)
        } else {
            Fatal::Other(message)
        }
    }
}

/// Whether `e` will not pass by itself: the path is not usable as given (not a folder, no
/// permission, read-only, a loop of links, too long). Everything else (no space, out of
/// inotify watches or file descriptors, out of memory, EIO, a stale NFS handle, a time-out)
/// may pass, and a restart may succeed.
pub fn needs_operator(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENOTDIR
                | libc::EISDIR
                | libc::EEXIST
                | libc::EACCES
                | libc::EPERM
                | libc::EROFS
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::EINVAL
        )
    )
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fatal::Config(m) | Fatal::Locked(m) | Fatal::Unavailable(m) | Fatal::Other(m) => f.write_str(m),
        }
    }
}

impl From<crate::config::ConfigError> for Fatal {
    fn from(e: crate::config::ConfigError) -> Fatal {
        Fatal::Config(e.0)
    }
}

/// A backend that cannot be opened, whichever it is.
impl From<crate::spool::OpenError> for Fatal {
    fn from(e: crate::spool::OpenError) -> Fatal {
        use crate::spool::OpenError;
        match e {
            OpenError::Config(m) => Fatal::Config(m),
            OpenError::Locked(m) => Fatal::Locked(m),
            OpenError::Io(m) => Fatal::Other(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_an_operator_must_change_is_a_configuration_error() {
        let code = |errno| Fatal::io(String::new(), &io::Error::from_raw_os_error(errno)).exit_code();
        for errno in [libc::ENOTDIR, libc::EACCES, libc::EROFS, libc::EEXIST] {
            assert_eq!(code(errno), EX_CONFIG, "errno {errno}");
        }
        // Out of inotify watches (ENOSPC), instances or fds (EMFILE), a full disk, EIO:
        // systemd restarts these.
        for errno in
            [libc::ENOSPC, libc::EMFILE, libc::ENFILE, libc::EIO, libc::ENOMEM, libc::ESTALE, libc::ETIMEDOUT]
        {
            assert_eq!(code(errno), EX_SOFTWARE, "errno {errno}");
        }
        assert_eq!(Fatal::Unavailable(String::new()).exit_code(), EX_TEMPFAIL);
    }
}
