//! Durable file writes with group commit.
//!
//! Every file the daemons write goes through a [`Batch`]: each file is written to a temp file
//! in its destination folder, all temp files are synced, renamed into place, and each folder is
//! synced once. The syncs of a batch are issued together ([`syncs::sync_all`]), so that
//! one device flush (and, on a journalling filesystem, one journal commit) serves many of them:
//! finishing N tasks at once costs about two flushes instead of 2N. A reader never sees half a
//! file.
//!
//! Not a cache and not a queue: a batch is committed at the end of every loop turn.

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::syncs::{self, Sync};

/// Prefix of the daemons' temp files: a dot-file, so every reader and the queue skip it.
pub const TEMP_PREFIX: &str = ".ww-";

struct Item<T> {
    dir: PathBuf,
    name: String,
    bytes: Vec<u8>,
    mtime: Option<SystemTime>,
    /// Synced (durable); else only atomic (a reader never sees half of it).
    sync: bool,
    tag: T,
}

/// Writes staged during one loop turn, committed together.
pub struct Batch<T> {
    items: Vec<Item<T>>,
    seq: u64,
    pid: u32,
    /// A destination folder found missing is made again (see [`Batch::recreating`]).
    recreate: bool,
    recreated: BTreeSet<PathBuf>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            items: Vec::new(),
            seq: 0,
            pid: std::process::id(),
            recreate: false,
            recreated: BTreeSet::new(),
        }
    }
}

impl<T> Batch<T> {
    pub fn new() -> Batch<T> {
        Batch::default()
    }

    /// A batch that makes a missing destination folder again (with its missing parents,
    /// durably) instead of failing: a daemon's own folders, removed under it (`rm -rf` of
    /// the spool), come back at its next write.
    pub fn recreating() -> Batch<T> {
        Batch { recreate: true, ..Batch::default() }
    }

    /// The folders made again since the last call.
    pub fn take_recreated(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.recreated).into_iter().collect()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Stages `bytes` as `dir/name`, replacing any file of that name when committed. `tag`
    /// comes back with the outcome, so the caller knows what to do next.
    pub fn add(&mut self, dir: &Path, name: &str, bytes: Vec<u8>, tag: T) {
        self.add_with_mtime(dir, name, bytes, None, tag)
    }

    /// Like `add`, and sets the file's modification time (kept when a task file is rewritten,
    /// since the queue's order is by mtime).
    pub fn add_with_mtime(
        &mut self,
        dir: &Path,
        name: &str,
        bytes: Vec<u8>,
        mtime: Option<SystemTime>,
        tag: T,
    ) {
        self.items.push(Item {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            bytes,
            mtime,
            sync: true,
            tag,
        });
    }

    /// Like `add`, but only atomic, not synced: for files whose loss in a power failure costs
    /// nothing (a claim receipt: the claim it records is not synced either).
    pub fn add_unsynced(&mut self, dir: &Path, name: &str, bytes: Vec<u8>, tag: T) {
        self.items.push(Item {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            bytes,
            mtime: None,
            sync: false,
            tag,
        });
    }

    /// Writes, syncs and renames every staged file, then syncs each folder once. Returns each
    /// tag with its outcome; a failed item left nothing behind (its temp file is removed).
    pub fn commit(&mut self) -> Vec<(T, io::Result<()>)> {
        let mut items = std::mem::take(&mut self.items);
        let mut done = Vec::with_capacity(items.len());
        while !items.is_empty() {
            let rest = items.split_off(items.len().min(OPEN_PER_COMMIT));
            self.commit_some(std::mem::replace(&mut items, rest), &mut done);
        }
        done
    }

    /// Commits `items`, each open as a temp file until it is synced and renamed.
    fn commit_some(&mut self, items: Vec<Item<T>>, done: &mut Vec<(T, io::Result<()>)>) {
        let mut staged = Vec::with_capacity(items.len());
        for item in items {
            self.seq += 1;
            let tmp = item.dir.join(format!("{TEMP_PREFIX}{}.{}.{}.tmp", item.name, self.pid, self.seq));
            let written = match write_temp(&tmp, &item.bytes, item.mtime) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.recreate => {
                    let made = recreate_dir(&item.dir);
                    if made.is_ok() {
                        self.recreated.insert(item.dir.clone());
                    }
                    made.and_then(|()| write_temp(&tmp, &item.bytes, item.mtime))
                }
                other => other,
            };
            match written {
                Ok(file) => staged.push((item, tmp, file)),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    done.push((item.tag, Err(e)));
                }
            }
        }
        // Start the write-back of every file at once, so that the syncs below find their
        // I/O done or in flight instead of issuing it one file after another.
        for (item, _, file) in &staged {
            if item.sync {
                // SAFETY: sync_file_range on an fd we own; a failure only loses the head start.
                unsafe {
                    libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
                }
            }
        }
        let to_sync: Vec<(RawFd, Sync)> = staged
            .iter()
            .filter(|(item, _, _)| item.sync)
            .map(|(_, _, f)| (f.as_raw_fd(), Sync::Data))
            .collect();
        let mut synced = syncs::sync_all(&to_sync).into_iter();
        let mut renamed = Vec::with_capacity(staged.len());
        for (item, tmp, _) in staged {
            let ready = if item.sync { synced.next().unwrap_or(Ok(())) } else { Ok(()) };
            match ready.and_then(|()| fs::rename(&tmp, item.dir.join(&item.name))) {
                Ok(()) => renamed.push(item),
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    done.push((item.tag, Err(e)));
                }
            }
        }
        let dirs: Vec<PathBuf> = renamed
            .iter()
            .filter(|i| i.sync)
            .map(|i| i.dir.as_path())
            .collect::<BTreeSet<&Path>>()
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        let dir_syncs = sync_dirs(&dirs);
        let failed_dirs: Vec<(PathBuf, io::Error)> =
            dirs.into_iter().zip(dir_syncs).filter_map(|(d, r)| r.err().map(|e| (d, e))).collect();
        for item in renamed {
            let outcome = match failed_dirs.iter().find(|(d, _)| item.sync && *d == item.dir) {
                Some((_, e)) => Err(io::Error::new(e.kind(), e.to_string())),
                None => Ok(()),
            };
            done.push((item.tag, outcome));
        }
    }
}

/// Most temp files a commit holds open at once: a large batch is committed in parts, so that
/// it never runs into the soft limit of open files (1,024 by default).
pub const OPEN_PER_COMMIT: usize = 256;

fn write_temp(tmp: &Path, bytes: &[u8], mtime: Option<SystemTime>) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(tmp)?;
    file.write_all(bytes)?;
    if let Some(t) = mtime {
        file.set_modified(t)?;
    }
    Ok(file)
}

/// Makes a folder's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// [`sync_dir`] of each folder, all in flight at once.
fn sync_dirs(dirs: &[PathBuf]) -> Vec<io::Result<()>> {
    let opened: Vec<io::Result<File>> = dirs.iter().map(File::open).collect();
    let fds: Vec<(RawFd, Sync)> = opened.iter().flatten().map(|f| (f.as_raw_fd(), Sync::All)).collect();
    let mut synced = syncs::sync_all(&fds).into_iter();
    opened.into_iter().map(|o| o.and_then(|_| synced.next().unwrap_or(Ok(())))).collect()
}

/// Writes one file durably, on its own.
pub fn write_now(dir: &Path, name: &str, bytes: Vec<u8>) -> io::Result<()> {
    let mut batch = Batch::new();
    batch.add(dir, name, bytes, ());
    batch.commit().pop().map_or(Ok(()), |(_, r)| r)
}

/// How [`publish`] names and owns the files it adds.
#[derive(Clone, Copy, Debug)]
pub struct Publish<'a> {
    /// Start of the temp files' names: a dot, so that the queue never takes them.
    pub temp_prefix: &'a str,
    /// The `n`-th name to try when the wanted one is taken; `None`: a taken name fails with
    /// `AlreadyExists`.
    pub alternative: Option<fn(&OsStr, u64) -> OsString>,
    /// Owner and group to give each file (`fchown(2)`; `None` leaves that one alone).
    pub owner: (Option<u32>, Option<u32>),
}

/// Adds new files to `dir` as a producer queues tasks: each is written to a dot-temp file and
/// synced, renamed to its name without replacing anything, and the folder synced once.
/// Returns, per file, the name it got.
pub fn publish(dir: &Path, files: Vec<(OsString, Vec<u8>)>, how: &Publish) -> Vec<io::Result<OsString>> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let mut renamed = false;
    let mut out = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{}{pid}.{seq}.tmp", how.temp_prefix));
        let written = write_temp(&tmp, &bytes, None).and_then(|file| {
            if how.owner != (None, None) {
                nix::unistd::fchown(
                    file.as_raw_fd(),
                    how.owner.0.map(Into::into),
                    how.owner.1.map(Into::into),
                )?;
            }
            file.sync_all()
        });
        let placed = written.and_then(|()| place(&tmp, dir, &name, how.alternative));
        if placed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        renamed |= placed.is_ok();
        out.push(placed);
    }
    if renamed {
        if let Err(e) = sync_dir(dir) {
            return out.into_iter().map(|r| r.and(Err(io::Error::new(e.kind(), e.to_string())))).collect();
        }
    }
    out
}

fn place(
    tmp: &Path,
    dir: &Path,
    name: &OsStr,
    alternative: Option<fn(&OsStr, u64) -> OsString>,
) -> io::Result<OsString> {
    let mut target = name.to_os_string();
    for n in 1..=1000 {
        match rename_noreplace(tmp, &dir.join(&target)) {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match alternative {
                Some(alt) => target = alt(name, n),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name"))
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let cfrom = CString::new(from.as_os_str().as_bytes())?;
    let cto = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; renameat2 has no other preconditions.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, cfrom.as_ptr(), libc::AT_FDCWD, cto.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without RENAME_NOREPLACE (NFS, some FUSE): check, then rename.
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            fs::rename(from, to)
        }
        _ => Err(err),
    }
}

/// Creates `dir` and its parents with mode 0750 (before the umask).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)
}

/// Creates `dir` and its missing parents (mode 0750), and syncs the folder above each one
/// made, so that the files then renamed into it survive a power failure.
pub fn recreate_dir(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| d.symlink_metadata().is_err()).collect();
    create_dir(dir)?;
    for made in missing.iter().rev() {
        if let Some(parent) = made.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes this program's temp files left in `dir` by a dead process. `owner` limits it to
/// temp files of one final name prefix (for folders shared between workers).
pub fn remove_stale_temps(dir: &Path, owner: Option<&str>) -> io::Result<usize> {
    let prefix = format!("{TEMP_PREFIX}{}", owner.unwrap_or(""));
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(prefix.as_bytes()) && name.ends_with(b".tmp") {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_writes_all_and_reports_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Batch::new();
        b.add(dir.path(), "a.json", b"{}".to_vec(), 1);
        b.add(dir.path(), "b.json", b"[]".to_vec(), 2);
        b.add(&dir.path().join("missing"), "c.json", b"x".to_vec(), 3);
        let mut out: Vec<(i32, bool)> = b.commit().into_iter().map(|(t, r)| (t, r.is_ok())).collect();
        out.sort();
        assert_eq!(out, vec![(1, true), (2, true), (3, false)]);
        assert_eq!(fs::read(dir.path().join("a.json")).expect("a"), b"{}");
        let names: Vec<_> =
            fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("e").file_name()).collect();
        assert_eq!(names.len(), 2, "no temp files left: {names:?}");
        assert!(b.is_empty());
    }

    #[test]
    fn a_recreating_batch_makes_a_removed_folder_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("results/marie");
        let mut b = Batch::recreating();
        b.add(&gone, "a.json", b"{}".to_vec(), 1);
        b.add(dir.path(), "b.json", b"{}".to_vec(), 2);
        let out: Vec<(i32, bool)> = b.commit().into_iter().map(|(t, r)| (t, r.is_ok())).collect();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, ok)| *ok), "{out:?}");
        assert_eq!(fs::read(gone.join("a.json")).expect("a"), b"{}");
        assert_eq!(b.take_recreated(), vec![gone]);
        assert!(b.take_recreated().is_empty());
    }

    #[test]
    fn many_files_in_several_folders_are_synced_together_in_parts_and_reported_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folders: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
        for f in &folders {
            fs::create_dir(f).expect("mkdir");
        }
        // More than fit open at once: committed in parts.
        const N: usize = 2 * OPEN_PER_COMMIT + 100;
        let mut b = Batch::new();
        for i in 0..N {
            let name = format!("{i}.json");
            match i % 4 {
                3 => b.add_unsynced(&folders[0], &name, i.to_string().into_bytes(), i),
                _ => b.add(&folders[i % 3], &name, i.to_string().into_bytes(), i),
            }
        }
        let out = b.commit();
        let tags: Vec<usize> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, (0..N).collect::<Vec<_>>());
        assert!(out.iter().all(|(_, r)| r.is_ok()));
        for i in 0..N {
            let folder = if i % 4 == 3 { &folders[0] } else { &folders[i % 3] };
            assert_eq!(fs::read(folder.join(format!("{i}.json"))).expect("file"), i.to_string().as_bytes());
        }
    }

    #[test]
    fn rewrite_keeps_mtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let mut b = Batch::new();
        b.add_with_mtime(dir.path(), "t.json", b"{}".to_vec(), Some(t), ());
        assert!(b.commit()[0].1.is_ok());
        let m = fs::metadata(dir.path().join("t.json")).expect("meta").modified().expect("mtime");
        assert_eq!(m, t);
    }

    #[test]
    fn noreplace_refuses_existing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "1").expect("a");
        fs::write(&b, "2").expect("b");
        let err = rename_noreplace(&a, &b).expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        fs::remove_file(&b).expect("rm");
        rename_noreplace(&a, &b).expect("rename");
        assert_eq!(fs::read(&b).expect("b"), b"1");
    }

    #[test]
    fn publish_never_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.json"), "old").expect("w");
        let strict = Publish { temp_prefix: ".t-", alternative: None, owner: (None, None) };
        let out = publish(dir.path(), vec![("a.json".into(), b"new".to_vec())], &strict);
        assert_eq!(out[0].as_ref().expect_err("taken").kind(), io::ErrorKind::AlreadyExists);
        fn alt(name: &OsStr, n: u64) -> OsString {
            format!("{}~{n}", name.to_string_lossy()).into()
        }
        let lenient = Publish { alternative: Some(alt), ..strict };
        let files = vec![("a.json".into(), b"new".to_vec()), ("b.json".into(), b"b".to_vec())];
        let names: Vec<OsString> =
            publish(dir.path(), files, &lenient).into_iter().map(|r| r.expect("published")).collect();
        assert_eq!(names, vec![OsString::from("a.json~1"), OsString::from("b.json")]);
        assert_eq!(fs::read(dir.path().join("a.json")).expect("a"), b"old");
        assert_eq!(fs::read(dir.path().join("a.json~1")).expect("a~1"), b"new");
        let left: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".t-"))
            .collect();
        assert!(left.is_empty(), "no temp file left");
    }

    #[test]
    fn stale_temps_removed_by_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(".ww-marie.json.1.1.tmp"), "").expect("w");
        fs::write(dir.path().join(".ww-anga.json.1.1.tmp"), "").expect("w");
        fs::write(dir.path().join("marie.json"), "").expect("w");
        assert_eq!(remove_stale_temps(dir.path(), Some("marie.json")).expect("rm"), 1);
        assert!(dir.path().join(".ww-anga.json.1.1.tmp").exists());
        assert!(dir.path().join("marie.json").exists());
    }
}
