//! Which results of a worker the listener has taken, without remembering every one: a
//! cursor over the results' modification times, and a seal that lets a restart skip a
//! folder that has not changed at all.
//!
//! A result file is known by its key, `(mtime in ns, name)`. Everything below `floor` has
//! been taken; at or above it, exactly the keys in `recent`. `recent` keeps the last
//! [`SLACK`] of keys (at most [`MAX_RECENT`]), so results renamed into the folder slightly
//! out of mtime order (several writers, a clock step) are still found by a scan. `sealed`
//! is the folder's own mtime at a moment when every result in it had been taken: if the
//! folder's mtime is still that, nothing was added or removed since, and a start-up does not
//! even list it. So a restart costs one `stat` per unchanged worker, and a scan of the
//! changed folders' names and mtimes, never a read of old results.
//!
//! Not a record of events: a result written with an mtime below `floor` while the listener
//! was down (a restored backup, a clock stepped back by more than the slack) is not found
//! at start-up; one arriving while it runs is (inotify names it). Nor does it decide what
//! is new: a file it finds may be a result taken before and touched or edited since, which
//! [`super::taken`] tells apart by task.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `(mtime in ns since the epoch, file name)`.
pub type Key = (i64, String);

/// How far below the newest taken key the cursor still remembers names.
pub const SLACK: Duration = Duration::from_secs(10);
/// Names remembered at most per worker; beyond, the floor rises sooner.
pub const MAX_RECENT: usize = 128;
/// A folder is sealed only once it has been quiet this long (its mtime is this old), so that
/// the inotify event of its last change has been read before the seal is taken.
pub const QUIET: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `None`: the listener has no record of this worker yet.
    #[serde(default)]
    pub floor_ns: Option<i64>,
    #[serde(default)]
    pub recent: BTreeSet<Key>,
    #[serde(default)]
    pub sealed_ns: Option<i64>,
    /// Results with an mtime below this are counted, not announced: the history found when
    /// there was no record of the worker, older than LISTENER_BACKFILL. Cleared once that
    /// backlog is taken.
    #[serde(default)]
    pub quiet_before_ns: Option<i64>,
}

pub fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec())
}

impl Cursor {
    /// Whether the result `key` has not been taken.
    pub fn is_new(&self, key: &Key) -> bool {
        match self.floor_ns {
            None => true,
            Some(floor) => key.0 >= floor && !self.recent.contains(key),
        }
    }

    /// Records `key` as taken. `lowest_pending`: the smallest key still waiting to be taken,
    /// which the floor never passes.
    pub fn take(&mut self, key: Key, lowest_pending: Option<i64>) {
        let floor = *self.floor_ns.get_or_insert(i64::MIN);
        if key.0 >= floor {
            self.recent.insert(key);
        }
        self.prune(lowest_pending);
    }

    /// Raises the floor over names that are old (beyond [`SLACK`] of the newest) or too many.
    fn prune(&mut self, lowest_pending: Option<i64>) {
        let Some(newest) = self.recent.last().map(|k| k.0) else {
            return;
        };
        let old_before = newest.saturating_sub(SLACK.as_nanos() as i64);
        while let Some(first) = self.recent.first() {
            let (t, over) = (first.0, self.recent.len() > MAX_RECENT);
            if !(t < old_before || over) || lowest_pending.is_some_and(|p| p <= t) {
                break;
            }
            self.recent.pop_first();
            self.floor_ns = Some(self.floor_ns.map_or(t + 1, |f| f.max(t + 1)));
        }
    }

    /// A scan found every result of a worker with no record: from now on there is one.
    /// Results older than `quiet_before_ns` are only counted.
    pub fn known(&mut self, quiet_before_ns: i64) {
        if self.floor_ns.is_none() {
            self.floor_ns = Some(i64::MIN);
            self.quiet_before_ns = Some(quiet_before_ns);
        }
    }

    /// Whether the result `key` is announced (not old history found at first sight).
    pub fn announces(&self, key: &Key) -> bool {
        self.quiet_before_ns.is_none_or(|q| key.0 >= q)
    }
}

/// What a scan of a result folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The results not taken, in key order; empty when `unchanged`.
    pub new: Vec<Key>,
    /// Every result in the folder (when it was listed), by [`super::taken::hash_name`].
    pub present: Vec<u64>,
    /// The folder's mtime is the sealed one: not listed.
    pub unchanged: bool,
}

/// Lists the results of `dir` that `cursor` has not taken. A folder that is missing is an
/// empty one.
pub fn scan(dir: &Path, cursor: &Cursor) -> io::Result<Scan> {
    let dir_meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::default()),
        Err(e) => return Err(e),
    };
    let dir_mtime_ns = mtime_ns(&dir_meta);
    if cursor.sealed_ns == Some(dir_mtime_ns) {
        return Ok(Scan { new: Vec::new(), present: Vec::new(), unchanged: true });
    }
    let mut new = Vec::new();
    let mut present = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // A result is a record: not a dot-file (temp files, `.retried/`).
        if crate::spool::layout::record_stem(&name).is_none() {
            continue;
        }
        // fstatat(2) relative to the folder's fd, without following a symlink.
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        present.push(super::taken::hash_name(&name));
        let key = (mtime_ns(&meta), name);
        if cursor.is_new(&key) {
            new.push(key);
        }
    }
    new.sort_unstable();
    Ok(Scan { new, present, unchanged: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn key(t: i64, n: &str) -> Key {
        (t, n.to_string())
    }

    #[test]
    fn no_record_means_everything_is_new() {
        let c = Cursor::default();
        assert!(c.is_new(&key(0, "a.json")));
    }

    #[test]
    fn taken_keys_are_not_new_and_old_ones_become_the_floor() {
        let mut c = Cursor::default();
        c.take(key(100 * S, "a.json"), None);
        c.take(key(100 * S, "b.json"), None);
        assert!(!c.is_new(&key(100 * S, "a.json")));
        assert!(c.is_new(&key(100 * S, "c.json")), "same mtime, other name");
        assert!(c.is_new(&key(99 * S, "late.json")), "within the slack");
        c.take(key(200 * S, "z.json"), None);
        assert_eq!(c.recent.len(), 1, "names beyond the slack are folded into the floor");
        assert_eq!(c.floor_ns, Some(100 * S + 1));
        assert!(!c.is_new(&key(100 * S, "c.json")), "below the floor now");
        assert!(c.is_new(&key(150 * S, "c.json")));
    }

    #[test]
    fn the_floor_never_passes_a_pending_result() {
        let mut c = Cursor::default();
        c.take(key(100 * S, "a.json"), None);
        c.take(key(200 * S, "z.json"), Some(50 * S));
        assert_eq!(c.recent.len(), 2);
        assert!(c.floor_ns.is_some_and(|f| f <= 50 * S));
    }

    #[test]
    fn recent_names_are_bounded() {
        let mut c = Cursor::default();
        for i in 0..1000 {
            c.take(key(S + i, &format!("{i}.json")), None);
        }
        assert_eq!(c.recent.len(), MAX_RECENT);
        assert!(!c.is_new(&key(S, "0.json")));
        assert!(c.is_new(&key(S + 999, "other.json")));
    }

    #[test]
    fn scan_lists_new_results_in_key_order_and_skips_a_sealed_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        for n in ["a.json", "b.json", ".ww-c.json.1.1.tmp", "notes.txt"] {
            fs::write(dir.path().join(n), "{}").expect("write");
        }
        fs::create_dir(dir.path().join(".retried")).expect("mkdir");
        let mut c = Cursor::default();
        let s = scan(dir.path(), &c).expect("scan");
        let names: Vec<&str> = s.new.iter().map(|k| k.1.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"a.json") && names.contains(&"b.json"));
        for k in s.new {
            c.take(k, None);
        }
        assert!(scan(dir.path(), &c).expect("scan").new.is_empty());
        c.sealed_ns = Some(mtime_ns(&fs::metadata(dir.path()).expect("stat")));
        assert!(scan(dir.path(), &c).expect("scan").unchanged);
        assert!(scan(&dir.path().join("missing"), &c).expect("scan").new.is_empty());
    }
}
