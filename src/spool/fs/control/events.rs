//! The listener's events in `triggers/orchestrator/`, read oldest first (their names sort by
//! the time of what they report), each once; following them sleeps on inotify.

use std::collections::HashSet;
use std::path::PathBuf;

use super::wait::Watcher;
use crate::format::records::MAX_RECORD_BYTES;
use crate::spool::control::{EventFeed, EventsRead, StoredEvent};
use crate::spool::error::Error;
use crate::spool::layout;
use crate::spool::read;

/// The events folder, read once or followed.
pub struct FsEvents {
    dir: PathBuf,
    /// Watching the folder (when following), set before the first listing.
    watcher: Option<Watcher>,
    /// Names returned (or said unreadable) already.
    seen: HashSet<String>,
    /// The folder is to be listed whole: at first, and when arrivals may have been missed.
    list_all: bool,
}

impl FsEvents {
    pub fn open(dir: PathBuf, follow: bool) -> Result<FsEvents, Error> {
        // Watch before the first listing, so nothing falls between them.
        let watcher = match follow {
            true => Some(Watcher::new(&dir).map_err(|e| Error::new("cannot watch", dir.display(), e))?),
            false => None,
        };
        Ok(FsEvents { dir, watcher, seen: HashSet::new(), list_all: true })
    }

    /// The events among `names` not seen before, oldest first.
    fn read(&mut self, names: Vec<String>) -> EventsRead {
        let mut out = EventsRead::default();
        for name in names {
            let Some(id) = layout::record_stem(&name).filter(|_| !self.seen.contains(&name)) else {
                continue;
            };
            let path = self.dir.join(&name);
            let (file, meta) = match read::open(&path) {
                Ok(f) => f,
                Err(e) if e.is_missing() => continue,
                Err(e) => {
                    out.unreadable.push(Error::new("cannot read", path.display(), e.into()));
                    self.seen.insert(name);
                    continue;
                }
            };
            // Written whole by the listener; one that does not parse yet is taken when closed.
            let bytes = read::read_opened(&file, &meta, MAX_RECORD_BYTES).ok();
            let value = bytes.and_then(|b| serde_json::from_slice(&b).ok());
            if let (Some(value), Ok(written)) = (value, meta.modified()) {
                out.events.push(StoredEvent { name: id.to_string(), written, value });
                self.seen.insert(name);
            }
        }
        out.events.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

impl EventFeed for FsEvents {
    fn next(&mut self, wait: bool) -> Result<EventsRead, Error> {
        let mut arrived = Vec::new();
        if let (true, Some(w)) = (wait, self.watcher.as_mut()) {
            let watch_error = |e| Error::new("cannot watch", self.dir.display(), e);
            if let Some(wake) = w.next(None).map_err(watch_error)? {
                self.list_all |= wake.rescan;
                arrived = wake.arrived.into_iter().filter_map(|n| n.into_string().ok()).collect();
            }
        }
        let names = match std::mem::take(&mut self.list_all) {
            true => super::list(&self.dir),
            false => arrived,
        };
        Ok(self.read(names))
    }
}
