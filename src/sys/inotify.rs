//! inotify on a few folders, for a mio loop: files that arrive (IN_CLOSE_WRITE, IN_MOVED_TO, so
//! a file is seen once it is whole), names created (IN_CREATE, for what is never written:
//! links, FIFOs, folders), queue overflows, and lost watches.
//!
//! Shared by the worker (its queue), the listener (results and heartbeats) and
//! `watcherctl submit --wait` (one result folder).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// What happened in a watched folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<K> {
    /// A file was closed after writing, or renamed in.
    Arrived(K, OsString),
    /// A name was created. Only worth a look for what is never written and closed: symlinks,
    /// FIFOs, device nodes and folders made in place.
    Created(K, OsString),
    /// The kernel's event queue overflowed: events were lost, rescan everything.
    Overflow,
    /// The folder itself was removed or moved away; its watch is gone.
    Lost(K),
    /// A child was removed or moved away (only from folders watched with `add_removals`).
    Removed(K, OsString),
}

/// Watches over folders, each known by a key of the caller's.
pub struct DirWatch<K> {
    inotify: Inotify,
    keys: HashMap<WatchDescriptor, K>,
    buf: Vec<u8>,
}

const ARRIVALS: WatchMask = WatchMask::CLOSE_WRITE.union(WatchMask::MOVED_TO);
const SELF_EVENTS: WatchMask = WatchMask::DELETE_SELF.union(WatchMask::MOVE_SELF);

impl<K: Clone> DirWatch<K> {
    pub fn new() -> io::Result<DirWatch<K>> {
        let inotify = Inotify::init().map_err(|e| match e.raw_os_error() {
            Some(libc::EMFILE) => io::Error::new(
                e.kind(),
                "too many inotify instances: raise the sysctl fs.inotify.max_user_instances",
            ),
            _ => e,
        })?;
        Ok(DirWatch { inotify, keys: HashMap::new(), buf: vec![0; 64 * 1024] })
    }

    /// Watches `dir` for arrivals, reported under `key`.
    pub fn add(&mut self, dir: &Path, key: K) -> io::Result<()> {
        let mask = ARRIVALS | SELF_EVENTS | WatchMask::CREATE | WatchMask::ONLYDIR;
        let wd = self.inotify.watches().add(dir, mask).map_err(|e| watch_error(dir, e))?;
        self.keys.insert(wd, key);
        Ok(())
    }

    /// Watches `dir` for arrivals and for its children being removed or moved away, under
    /// one `key` (inotify keeps one mask per folder and instance).
    pub fn add_with_removals(&mut self, dir: &Path, key: K) -> io::Result<()> {
        let mask = ARRIVALS
            | SELF_EVENTS
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::ONLYDIR;
        let wd = self.inotify.watches().add(dir, mask).map_err(|e| watch_error(dir, e))?;
        self.keys.insert(wd, key);
        Ok(())
    }

    /// Watches `dir` for its children being removed or moved away. A folder that a process
    /// holds open (the worker's lock on its queue) gets no IN_DELETE_SELF when it is removed
    /// until the last fd closes; its parent's IN_DELETE comes at once.
    pub fn add_removals(&mut self, dir: &Path, key: K) -> io::Result<()> {
        let mask = WatchMask::DELETE | WatchMask::MOVED_FROM | SELF_EVENTS | WatchMask::ONLYDIR;
        let wd = self.inotify.watches().add(dir, mask).map_err(|e| watch_error(dir, e))?;
        self.keys.insert(wd, key);
        Ok(())
    }

    /// Reads every pending event into `out`, until the fd would block.
    pub fn read(&mut self, out: &mut Vec<Change<K>>) -> io::Result<()> {
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut lost = Vec::new();
            for event in events {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    out.push(Change::Overflow);
                    continue;
                }
                let Some(key) = self.keys.get(&event.wd) else {
                    continue;
                };
                if event.mask.intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
                    lost.push(event.wd.clone());
                    out.push(Change::Lost(key.clone()));
                } else if let Some(name) = event.name {
                    if event.mask.intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_TO) {
                        out.push(Change::Arrived(key.clone(), name.to_os_string()));
                    } else if event.mask.contains(EventMask::CREATE) {
                        out.push(Change::Created(key.clone(), name.to_os_string()));
                    } else if event.mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                        out.push(Change::Removed(key.clone(), name.to_os_string()));
                    }
                }
            }
            for wd in lost {
                // A moved folder keeps its watch; drop it, the caller re-adds by path.
                let _ = self.inotify.watches().remove(wd.clone());
                self.keys.remove(&wd);
            }
        }
    }
}

fn watch_error(dir: &Path, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => io::Error::new(
            e.kind(),
            format!(
                "cannot watch {}: inotify watch limit reached; raise the sysctl fs.inotify.max_user_watches",
                dir.display()
            ),
        ),
        _ => io::Error::new(e.kind(), format!("cannot watch {}: {e}", dir.display())),
    }
}

impl<K> AsRawFd for DirWatch<K> {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn arrivals_by_write_and_rename_not_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = DirWatch::new().expect("inotify");
        w.add(dir.path(), 7).expect("watch");
        fs::write(dir.path().join("a.json"), "{}").expect("write");
        fs::write(dir.path().join(".b.tmp"), "{}").expect("write");
        fs::rename(dir.path().join(".b.tmp"), dir.path().join("b.json")).expect("rename");
        let mut out = Vec::new();
        w.read(&mut out).expect("read");
        assert_eq!(
            out,
            vec![
                Change::Created(7, "a.json".into()),
                Change::Arrived(7, "a.json".into()),
                Change::Created(7, ".b.tmp".into()),
                Change::Arrived(7, ".b.tmp".into()),
                Change::Arrived(7, "b.json".into()),
            ]
        );
    }

    #[test]
    fn arrivals_and_removals_under_one_watch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = DirWatch::new().expect("inotify");
        w.add_with_removals(dir.path(), 1).expect("watch");
        fs::write(dir.path().join("a.json"), "{}").expect("write");
        fs::rename(dir.path().join("a.json"), dir.path().join("b.json")).expect("rename");
        fs::remove_file(dir.path().join("b.json")).expect("rm");
        let mut out = Vec::new();
        w.read(&mut out).expect("read");
        assert_eq!(
            out,
            vec![
                Change::Created(1, "a.json".into()),
                Change::Arrived(1, "a.json".into()),
                Change::Removed(1, "a.json".into()),
                Change::Arrived(1, "b.json".into()),
                Change::Removed(1, "b.json".into()),
            ]
        );
    }

    #[test]
    fn removed_folder_is_lost() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("q");
        fs::create_dir(&dir).expect("mkdir");
        let mut w = DirWatch::new().expect("inotify");
        w.add(&dir, "q").expect("watch");
        fs::remove_dir(&dir).expect("rmdir");
        let mut out = Vec::new();
        w.read(&mut out).expect("read");
        assert!(out.contains(&Change::Lost("q")), "{out:?}");
    }

    #[test]
    fn removal_of_a_folder_held_open_is_seen_from_its_parent() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("q");
        fs::create_dir(&dir).expect("mkdir");
        let _held = fs::File::open(&dir).expect("open");
        let mut w = DirWatch::new().expect("inotify");
        w.add(&dir, "q").expect("watch");
        w.add_removals(root.path(), "parent").expect("watch parent");
        fs::remove_dir(&dir).expect("rmdir");
        let mut out = Vec::new();
        w.read(&mut out).expect("read");
        assert!(!out.contains(&Change::Lost("q")), "no IN_DELETE_SELF while held: {out:?}");
        assert!(out.contains(&Change::Removed("parent", "q".into())), "{out:?}");
    }
}
