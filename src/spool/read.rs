//! Reading a file that someone else may have put in the spool: the one way the worker, the
//! listener and watcherctl open a task, a result, a heartbeat, a dead letter, an event, the
//! system prompt or the spend ledger.
//!
//! Whoever can write a folder of the spool can leave a FIFO, a device, a symlink or a huge
//! file where one of these is expected; none of them may hang or swamp a reader. So a name is
//! looked at first (what is not a regular file is never opened: opening a device can do
//! things), then opened `O_NONBLOCK|O_NOFOLLOW|O_CLOEXEC` (a FIFO swapped in since opens at
//! once instead of waiting for a writer, a symlink is refused), checked again with fstat (what
//! was opened is what is checked), and read up to a bound.
//!
//! Also [`writers`]: whether a process still has a file open for writing, where the kernel
//! can tell.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// Why a file of the spool was not read.
#[derive(Debug)]
pub enum Error {
    /// It is not a regular file (it was not opened, or not read): what it is.
    NotRegular(&'static str),
    /// It is larger than the reader's bound.
    TooLarge {
        size: u64,
        max: u64,
    },
    Io(io::Error),
}

impl Error {
    /// The file does not exist (a usual case for most readers).
    pub fn is_missing(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRegular(kind) => write!(f, "not a regular file but a {kind}"),
            Error::TooLarge { size, max } => write!(f, "{size} bytes, more than the {max} read at most"),
            Error::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// What a file that is not a regular file is, for messages.
pub fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Opens a regular file for reading, never waiting and never following a symlink; returns
/// it with its metadata (from the open file).
pub fn open(path: &Path) -> Result<(File, Metadata), Error> {
    open_with(path, false)
}

/// `open`, or with `follow` a symlink is followed (an operator's configuration file may be
/// one), never waiting all the same.
fn open_with(path: &Path, follow: bool) -> Result<(File, Metadata), Error> {
    let named = match follow {
        true => path.metadata(),
        false => path.symlink_metadata(),
    };
    let named = named.map_err(Error::Io)?;
    if !named.file_type().is_file() {
        return Err(Error::NotRegular(kind(named.file_type())));
    }
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | nofollow | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // Swapped for a symlink since it was looked at.
            Some(libc::ELOOP) => Error::NotRegular("symbolic link"),
            _ => Error::Io(e),
        })?;
    let meta = file.metadata().map_err(Error::Io)?;
    if !meta.file_type().is_file() {
        return Err(Error::NotRegular(kind(meta.file_type())));
    }
    Ok((file, meta))
}

/// Reads an opened file from its start, `max` bytes at most (a larger one is an error,
/// however it grows meanwhile).
pub fn read_opened(mut file: &File, meta: &Metadata, max: u64) -> Result<Vec<u8>, Error> {
    if meta.len() > max {
        return Err(Error::TooLarge { size: meta.len(), max });
    }
    file.rewind().map_err(Error::Io)?;
    // Sized to the file, so that it is one read(2) and one allocation.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.take(max + 1).read_to_end(&mut bytes).map_err(Error::Io)?;
    if bytes.len() as u64 > max {
        return Err(Error::TooLarge { size: bytes.len() as u64, max });
    }
    Ok(bytes)
}

/// Reads a whole regular file of at most `max` bytes.
pub fn read(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let (file, meta) = open(path)?;
    read_opened(&file, &meta, max)
}

/// `read`, following a symlink: for configuration files (env files), which an operator may
/// link; a FIFO or a device is refused all the same.
pub fn read_following(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let (file, meta) = open_with(path, true)?;
    read_opened(&file, &meta, max)
}

/// Whether some process has a file open for writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writers {
    /// Yes: its writer may not be done.
    Open,
    /// No process has it open for writing.
    Closed,
    /// The kernel would not say: not the file's owner and no CAP_LEASE, a filesystem without
    /// leases (NFS, CIFS, FUSE), or leases turned off (fs.leases-enable).
    Unknown,
}

/// Asks the kernel with a read lease, taken and given back at once: it is refused (EAGAIN)
/// while any process has the file open for writing. `file` must be open read-only.
pub fn writers(file: &File) -> Writers {
    if !lease_breaks_are_harmless() {
        return Writers::Unknown;
    }
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_SETLEASE takes an int.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Writers::Closed;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EBUSY) => Writers::Open,
        _ => Writers::Unknown,
    }
}

/// A writer that opens the file in the moment the lease is held makes the kernel send the
/// lease holder SIGIO, whose default action ends the process. A handler that does nothing
/// makes it harmless (and, unlike SIG_IGN, is not inherited by the agents across exec).
fn lease_breaks_are_harmless() -> bool {
    static HANDLED: OnceLock<bool> = OnceLock::new();
    *HANDLED
        .get_or_init(|| signal_hook::flag::register(libc::SIGIO, Arc::new(AtomicBool::new(false))).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn refuses_what_is_not_a_regular_file_without_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("/etc/hostname", &link).expect("symlink");
        for (path, what) in
            [(&fifo, "FIFO"), (&link, "symbolic link"), (&dir.path().to_path_buf(), "directory")]
        {
            let e = read(path, 10).expect_err("refused");
            assert_eq!(e.to_string(), format!("not a regular file but a {what}"));
        }
        assert!(read(&dir.path().join("none.json"), 10).expect_err("missing").is_missing());
    }

    #[test]
    fn reads_up_to_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        std::fs::write(&path, b"0123456789").expect("write");
        assert_eq!(read(&path, 10).expect("read"), b"0123456789");
        let e = read(&path, 9).expect_err("too large");
        assert_eq!(e.to_string(), "10 bytes, more than the 9 read at most");
    }

    #[test]
    fn tells_a_file_open_for_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        let mut w = File::create(&path).expect("create");
        w.write_all(b"{").expect("write");
        let (f, _) = open(&path).expect("open");
        // Our own file, so the lease is ours to take (or the kernel says nothing at all).
        assert!(matches!(writers(&f), Writers::Open | Writers::Unknown));
        drop(w);
        assert!(matches!(writers(&f), Writers::Closed | Writers::Unknown));
        if writers(&f) == Writers::Closed {
            let _w = OpenOptions::new().append(true).open(&path).expect("reopen");
            assert_eq!(writers(&f), Writers::Open);
        }
    }
}
