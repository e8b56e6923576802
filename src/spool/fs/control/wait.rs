//! Sleeping on inotify until files arrive in a folder: `submit --wait` (one result) and
//! `events --follow`. No polling: the process wakes when the folder changes, or at the
//! deadline.
//!
//! The folder may not exist yet (a worker that never started has no result folder): the
//! nearest folder above it that exists is watched until it appears. watcherctl does not
//! create it, so it never makes a daemon's folder with the wrong owner.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::sys::inotify::{Change, DirWatch};

/// What woke the watcher.
#[derive(Debug, Default)]
pub struct Wake {
    /// Names that arrived in the folder (closed after writing, or renamed in).
    pub arrived: Vec<OsString>,
    /// Arrivals may have been missed (the folder appeared, was replaced, or events
    /// overflowed): list the folder again.
    pub rescan: bool,
}

/// Watches one folder, and its nearest existing ancestor while it does not exist.
pub struct Watcher {
    dir: PathBuf,
    watch: DirWatch<PathBuf>,
    watched: HashSet<PathBuf>,
    poll: Poll,
    events: Events,
}

impl Watcher {
    pub fn new(dir: &Path) -> io::Result<Watcher> {
        let watch = DirWatch::new()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut SourceFd(&watch.as_raw_fd()), Token(0), Interest::READABLE)?;
        let mut w = Watcher {
            dir: dir.to_path_buf(),
            watch,
            watched: HashSet::new(),
            poll,
            events: Events::with_capacity(4),
        };
        w.arm()?;
        Ok(w)
    }

    /// Watches the folder, or the nearest folder above it that exists. Returns whether the
    /// folder itself is newly watched (what it holds was not seen arriving).
    fn arm(&mut self) -> io::Result<bool> {
        'again: loop {
            let mut dir = self.dir.clone();
            loop {
                if self.watched.contains(&dir) {
                    return Ok(false);
                }
                if dir.is_dir() {
                    match self.watch.add(&dir, dir.clone()) {
                        Ok(()) if dir == self.dir => {
                            self.watched.insert(dir);
                            return Ok(true);
                        }
                        // What appeared below it before the watch was set is not reported:
                        // look again from the bottom.
                        Ok(()) => {
                            self.watched.insert(dir);
                            continue 'again;
                        }
                        // Removed between the check and the watch: look higher.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                match dir.parent() {
                    Some(parent) => dir = parent.to_path_buf(),
                    None => return Ok(false),
                }
            }
        }
    }

    /// Sleeps until the folder changes or `deadline` passes (`None`: for ever). `None` at
    /// the deadline.
    pub fn next(&mut self, deadline: Option<Instant>) -> io::Result<Option<Wake>> {
        loop {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                return Ok(None);
            }
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut changes = Vec::new();
            self.watch.read(&mut changes)?;
            let mut wake = Wake::default();
            for change in changes {
                match change {
                    Change::Arrived(dir, name) if dir == self.dir => wake.arrived.push(name),
                    Change::Arrived(..) | Change::Created(..) | Change::Removed(..) => {}
                    Change::Overflow => wake.rescan = true,
                    Change::Lost(dir) => {
                        self.watched.remove(&dir);
                    }
                }
            }
            wake.rescan |= self.arm()?;
            if wake.rescan || !wake.arrived.is_empty() {
                return Ok(Some(wake));
            }
        }
    }
}

/// `submit --wait`: a result may have arrived.
impl crate::spool::control::Waiter for Watcher {
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<bool> {
        self.next(deadline).map(|w| w.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_folder_that_appears_later_is_watched() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("results/marie");
        let mut w = Watcher::new(&dir).expect("watch");
        let deadline = Some(Instant::now());
        assert!(w.next(deadline).expect("next").is_none(), "nothing yet");
        fs::create_dir_all(&dir).expect("mkdir");
        let wake = w.next(None).expect("next").expect("a wake");
        assert!(wake.rescan, "the folder is new: {wake:?}");
        fs::write(dir.join("t.json"), "{}").expect("w");
        let wake = w.next(None).expect("next").expect("a wake");
        assert_eq!(wake.arrived, vec![OsString::from("t.json")]);
    }
}
