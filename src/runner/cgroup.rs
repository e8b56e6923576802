//! A cgroup v2 subtree delegated to the daemon (systemd's `Delegate=yes`): the daemon moves
//! itself into a leaf, `supervisor`, and gives each run a cgroup of its own,
//! `task-<id>-<attempt>`, which it kills whole with `cgroup.kill` at the run's end and removes
//! once it is empty. Whatever an agent starts, setsid or double fork included, stays in its
//! run's cgroup.
//!
//! No controller is enabled in the subtree (`cgroup.subtree_control` is left alone): killing,
//! `cgroup.events` and `cgroup.procs` need none, and without one the cgroup v2 rule "no
//! processes in an inner cgroup" does not apply to what systemd itself puts in the unit's
//! cgroup (`ExecReload=`).

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The leaf the daemon itself lives in.
pub const SUPERVISOR: &str = "supervisor";
/// The prefix of a run's cgroup.
pub const RUN_PREFIX: &str = "task-";

/// The delegated subtree: the daemon's own cgroup when it started.
#[derive(Debug)]
pub struct Tree {
    base: PathBuf,
}

/// The cgroup of one run.
#[derive(Debug)]
pub struct Run {
    dir: PathBuf,
    /// `cgroup.procs`, open for the child to write itself into before it execs.
    procs: Option<OwnedFd>,
}

/// The daemon's cgroup v2 directory: its `0::` line of /proc/self/cgroup under the mount
/// point of the cgroup2 filesystem (/sys/fs/cgroup, or /sys/fs/cgroup/unified in systemd's
/// hybrid layout).
fn own_cgroup() -> Result<PathBuf, String> {
    let cgroup = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::")).ok_or("no cgroup v2 hierarchy")?;
    let info =
        fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    for line in info.lines() {
        let (fields, tail) = line.split_once(" - ").unwrap_or((line, ""));
        if !tail.starts_with("cgroup2 ") {
            continue;
        }
        let f: Vec<&str> = fields.split(' ').collect();
        let (Some(root), Some(point)) = (f.get(3), f.get(4)) else { continue };
        let rel = if *root == "/" { Some(path) } else { path.strip_prefix(root) };
        if let Some(rel) = rel.filter(|r| r.is_empty() || r.starts_with('/')) {
            return Ok(PathBuf::from(unescape(point)).join(rel.trim_start_matches('/')));
        }
    }
    Err(format!("the cgroup2 filesystem holding {path} is not mounted here"))
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct =
            b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether systemd delegated `dir` to us: its `user.delegate` (systemd 252 and later) or
/// `trusted.delegate` (251) attribute, or, for a service that is not root, the directory
/// given to our user (systemd chowns a delegated cgroup to `User=`).
fn delegated(dir: &Path) -> bool {
    let attr = |name: &std::ffi::CStr| {
        let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else { return false };
        let mut buf = [0u8; 8];
        // SAFETY: valid NUL-terminated strings and a buffer of the given size.
        let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        n == 1 && buf[0] == b'1'
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    attr(c"user.delegate")
        || attr(c"trusted.delegate")
        || (euid != 0 && fs::metadata(dir).is_ok_and(|m| m.uid() == euid))
}

fn pids(dir: &Path) -> io::Result<Vec<i32>> {
    Ok(fs::read_to_string(dir.join("cgroup.procs"))?.lines().filter_map(|l| l.parse().ok()).collect())
}

/// `populated 1` in `cgroup.events`.
fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|t| t.lines().any(|l| l == "populated 1"))
}

fn write_file(path: &Path, what: &str) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.write_all(what.as_bytes())
}

impl Tree {
    /// The daemon's cgroup, if systemd delegated it and no other process lives in it; then
    /// moves the daemon into its `supervisor` leaf. `Err` says why not.
    pub fn enter() -> Result<Tree, String> {
        let base = own_cgroup()?;
        if !delegated(&base) {
            return Err(format!("{} is not delegated to this process (no Delegate=yes)", base.display()));
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let others = pids(&base).map_err(|e| format!("{}: {e}", base.display()))?;
        let supervisor = base.join(SUPERVISOR);
        if others.iter().any(|p| *p != me) || populated(&supervisor) {
            return Err(format!("{} is shared with other processes", base.display()));
        }
        match fs::create_dir(&supervisor) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(format!("cannot create {}: {e}", supervisor.display()))
            }
            _ => {}
        }
        write_file(&supervisor.join("cgroup.procs"), "0")
            .map_err(|e| format!("cannot move into {}: {e}", supervisor.display()))?;
        Ok(Tree { base })
    }

    pub fn path(&self) -> &Path {
        &self.base
    }

    /// Run cgroups left by an earlier daemon in this subtree.
    pub fn leftovers(&self) -> Vec<Run> {
        let Ok(rd) = fs::read_dir(&self.base) else { return Vec::new() };
        rd.flatten()
            .filter(|e| e.file_name().as_bytes().starts_with(RUN_PREFIX.as_bytes()))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Run { dir: e.path(), procs: None })
            .collect()
    }

    /// A new cgroup for a run named `label` (a task id and attempt); one left over under the
    /// same name is reused once empty.
    pub fn create(&self, label: &str) -> io::Result<Run> {
        let name: String = label.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
        let dir = self.base.join(format!("{RUN_PREFIX}{name}"));
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !populated(&dir) => {}
            other => other?,
        }
        let procs = File::options().write(true).open(dir.join("cgroup.procs"))?;
        Ok(Run { dir, procs: Some(procs.into()) })
    }
}

impl Run {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The `cgroup.procs` the child writes itself into before it execs.
    pub fn procs_fd(&self) -> Option<RawFd> {
        self.procs.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The child is in: the descriptor is no longer needed.
    pub fn placed(&mut self) {
        self.procs = None;
    }

    /// SIGKILL to every process of the cgroup: `cgroup.kill` (Linux 5.14), else each pid of
    /// `cgroup.procs` (a process forked meanwhile is killed at the next try).
    pub fn kill(&self) -> io::Result<()> {
        match write_file(&self.dir.join("cgroup.kill"), "1") {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.dir.exists() => {
                for pid in pids(&self.dir)? {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Removes the cgroup if it is empty: `Ok(false)` while processes are still in it.
    pub fn remove(&self) -> io::Result<bool> {
        match fs::remove_dir(&self.dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
        assert_eq!(unescape(r"\04"), r"\04");
    }
}
