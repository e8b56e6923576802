//! Which result of each task the listener has taken: a result is counted and announced once,
//! keyed by its task, whatever later happens to its file (`touch`, an edit with `sed -i`, a
//! copy over it), until the worker writes a new result for that task (after `watcherctl dlq
//! retry`, or a removal and a new submission).
//!
//! [`super::cursor`] finds the files that may be new, by modification time; this decides.
//! A result is known by its task (its file's name) and its generation: the `finished_at` the
//! worker wrote in it, which an edit or a touch leaves as it is and a new run changes. Each
//! is kept as a 64-bit FNV-1a hash: 16 bytes on disk and about 20 in memory per result in the
//! folder. Two names with one hash could only make a result be announced twice, never lost:
//! the second generation differs and is taken as new.
//!
//! On disk, `ROOT/listener/taken/WORKER.N` is a log of 16-byte records (name hash, generation
//! hash, little-endian; generation 0 records a removal), appended and synced after each loop
//! turn's events and before the state, which names the file and the count of records it
//! commits. Records past that count (a crash between the two) are dropped at start-up, so the
//! same results are taken again and the same events written again under the same names. A
//! log grown to twice what it holds is written again whole, as the next N.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::format::fnv::fnv1a;
use crate::spool::layout::Layout;
use crate::sys::durable;

/// A record's generation when the result was removed.
const REMOVED: u64 = 0;
/// The generation of a file that is not a result the listener can read.
pub const UNREADABLE: &str = "\0unreadable";
/// A log is written again whole once it has this many records more than it holds, at least.
const SLACK_RECORDS: u64 = 4096;

/// What the state file says of a worker's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Its number (`WORKER.N`).
    #[serde(default)]
    pub file: u32,
    /// Records committed.
    #[serde(default)]
    pub records: u64,
}

/// The results of one worker that were taken.
#[derive(Debug, Default)]
pub struct Taken {
    by_name: HashMap<u64, u64>,
    mark: Mark,
    /// Records not yet appended.
    pending: Vec<(u64, u64)>,
    /// A log replaced by a rewrite, removed once the state names the new one.
    obsolete: Option<PathBuf>,
    /// The log was lost (its folder removed): written again whole at the next flush.
    lost: bool,
}

/// What a result's file name is known by.
pub fn hash_name(name: &str) -> u64 {
    fnv1a(&[name])
}

/// The generation of a result finished at `finished_at` (never [`REMOVED`]).
pub fn generation(finished_at: &str) -> u64 {
    fnv1a(&["generation", finished_at]).max(1)
}

impl Taken {
    /// Reads `worker`'s log as `mark` commits it, drops what lies beyond, and removes the
    /// other logs of this worker.
    pub fn open(layout: &Layout, worker: &str, mark: Mark) -> io::Result<Taken> {
        let file = layout.taken_log(worker, mark.file);
        let mut t = Taken { mark, ..Taken::default() };
        match File::open(&file) {
            Ok(f) => {
                let mut bytes = Vec::new();
                f.take(mark.records.saturating_mul(16)).read_to_end(&mut bytes)?;
                for r in bytes.chunks_exact(16) {
                    let name = u64::from_le_bytes(r[..8].try_into().unwrap_or_default());
                    let gen = u64::from_le_bytes(r[8..].try_into().unwrap_or_default());
                    t.apply(name, gen);
                }
                t.mark.records = bytes.len() as u64 / 16;
                OpenOptions::new().write(true).open(&file)?.set_len(t.mark.records * 16)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => t.mark.records = 0,
            Err(e) => return Err(e),
        }
        let own = format!("{worker}.");
        for entry in fs::read_dir(layout.taken()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let other =
                name.strip_prefix(&own).is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n != mark.file));
            if other {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(t)
    }

    fn apply(&mut self, name: u64, gen: u64) {
        if gen == REMOVED {
            self.by_name.remove(&name);
        } else {
            self.by_name.insert(name, gen);
        }
    }

    /// Whether the result `name` of generation `gen` was taken.
    pub fn has(&self, name: &str, gen: u64) -> bool {
        self.by_name.get(&hash_name(name)) == Some(&gen)
    }

    /// Records the result `name` of generation `gen` as taken.
    pub fn take(&mut self, name: &str, gen: u64) {
        let h = hash_name(name);
        if self.by_name.insert(h, gen) != Some(gen) {
            self.pending.push((h, gen));
        }
    }

    /// The result `name` is no longer in the folder.
    pub fn forget(&mut self, name: &str) {
        let h = hash_name(name);
        if self.by_name.remove(&h).is_some() {
            self.pending.push((h, REMOVED));
        }
    }

    /// Forgets every result not in `present` (a listing of the folder, by [`hash_name`]).
    pub fn keep_only(&mut self, present: &mut [u64]) {
        present.sort_unstable();
        let gone: Vec<u64> =
            self.by_name.keys().filter(|h| present.binary_search(h).is_err()).copied().collect();
        for h in gone {
            self.by_name.remove(&h);
            self.pending.push((h, REMOVED));
        }
    }

    /// What the state commits of this log.
    pub fn mark(&self) -> Mark {
        self.mark
    }

    /// Results held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty() || self.lost
    }

    /// The state folder was removed and made again: the log is written again whole.
    pub fn lost(&mut self) {
        self.lost = true;
    }

    /// Appends what is pending to the log and syncs it (or writes the log again whole when it
    /// has grown too much). Returns the mark for the state.
    pub fn flush(&mut self, layout: &Layout, worker: &str) -> io::Result<Mark> {
        if self.lost {
            return self.rewrite(layout, worker);
        }
        if self.pending.is_empty() {
            return Ok(self.mark);
        }
        let grown = self.mark.records + self.pending.len() as u64;
        if grown > 2 * self.by_name.len() as u64 + SLACK_RECORDS {
            return self.rewrite(layout, worker);
        }
        let folder = layout.taken();
        let file = layout.taken_log(worker, self.mark.file);
        let new = self.mark.records == 0;
        let mut bytes = Vec::with_capacity(self.pending.len() * 16);
        for (h, g) in &self.pending {
            bytes.extend_from_slice(&h.to_le_bytes());
            bytes.extend_from_slice(&g.to_le_bytes());
        }
        let open = || {
            OpenOptions::new().append(true).create(new).mode(0o640).custom_flags(libc::O_CLOEXEC).open(&file)
        };
        let mut f = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && new => {
                durable::recreate_dir(&folder).and_then(|()| open())?
            }
            // Removed under the listener (with its folder, or alone): written again whole.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.rewrite(layout, worker),
            other => other?,
        };
        // Whatever lies past the committed records (a failed append) is cut first.
        f.set_len(self.mark.records * 16)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        if new {
            durable::sync_dir(&folder)?;
        }
        self.mark.records = grown;
        self.pending.clear();
        Ok(self.mark)
    }

    /// Writes the log again whole, as the next file.
    fn rewrite(&mut self, layout: &Layout, worker: &str) -> io::Result<Mark> {
        let folder = layout.taken();
        let next = self.mark.file.wrapping_add(1);
        let mut bytes = Vec::with_capacity(self.by_name.len() * 16);
        for (h, g) in &self.by_name {
            bytes.extend_from_slice(&h.to_le_bytes());
            bytes.extend_from_slice(&g.to_le_bytes());
        }
        durable::recreate_dir(&folder)?;
        durable::write_now(&folder, &Layout::taken_name(worker, next), bytes)?;
        self.obsolete = Some(layout.taken_log(worker, self.mark.file));
        self.mark = Mark { file: next, records: self.by_name.len() as u64 };
        self.pending.clear();
        self.lost = false;
        Ok(self.mark)
    }

    /// The state names the new log: the old one goes.
    pub fn committed(&mut self) {
        if let Some(old) = self.obsolete.take() {
            let _ = fs::remove_file(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_results_survive_a_restart_and_uncommitted_records_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        let mut t = Taken::open(&layout, "marie", Mark::default()).expect("open");
        let (g1, g2) = (generation("2026-01-01T00:00:00.000Z"), generation("2026-01-02T00:00:00.000Z"));
        t.take("t1.json", g1);
        t.take("t2.json", g1);
        let mark = t.flush(&layout, "marie").expect("flush");
        assert_eq!(mark, Mark { file: 0, records: 2 });
        // A turn whose state was never written.
        t.take("t3.json", g1);
        t.forget("t1.json");
        t.flush(&layout, "marie").expect("flush");
        let t = Taken::open(&layout, "marie", mark).expect("reopen");
        assert!(t.has("t1.json", g1) && t.has("t2.json", g1), "committed");
        assert!(!t.has("t3.json", g1), "not committed");
        assert!(!t.has("t1.json", g2), "another generation is another result");
        let len = fs::metadata(layout.taken_log("marie", 0)).expect("log").len();
        assert_eq!(len, 32, "cut back to what is committed");
    }

    #[test]
    fn a_grown_log_is_written_again_and_the_old_one_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        let mut t = Taken::open(&layout, "anga", Mark::default()).expect("open");
        let g = generation("x");
        for i in 0..3000 {
            t.take(&format!("t{i}.json"), g);
            t.forget(&format!("t{i}.json"));
        }
        t.take("kept.json", g);
        let mark = t.flush(&layout, "anga").expect("flush");
        assert_eq!(mark, Mark { file: 1, records: 1 });
        t.committed();
        assert!(!layout.taken_log("anga", 0).exists());
        let mut t = Taken::open(&layout, "anga", mark).expect("reopen");
        assert_eq!(t.len(), 1);
        assert!(t.has("kept.json", g));
        t.keep_only(&mut []);
        assert_eq!(t.len(), 0);
        assert!(t.is_dirty());
    }
}
