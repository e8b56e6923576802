//! One process per worker, one listener per spool: an exclusive `flock(2)` on a file or folder
//! the caller opened, taken without waiting. The kernel drops it when the process dies, however
//! it dies, so a crash never leaves a stale lock behind (unlike a pidfile).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes an exclusive lock on `file` without waiting: `Err` with EWOULDBLOCK when another
/// process holds it.
pub fn try_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock on an fd we own, borrowed for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_description_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = File::open(dir.path()).expect("open");
        try_exclusive(&first).expect("first lock");
        let second = File::open(dir.path()).expect("open again");
        let e = try_exclusive(&second).expect_err("held");
        assert_eq!(e.raw_os_error(), Some(libc::EWOULDBLOCK));
        drop(first);
        try_exclusive(&second).expect("free once the holder is gone");
    }
}
