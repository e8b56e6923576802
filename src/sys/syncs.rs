//! Syncs waited for together. A commit's `fdatasync(2)`s and folder `fsync(2)`s are put in
//! flight at once, so that one device flush (and, on a journalling filesystem, one journal
//! commit) serves them all: N syncs issued together take about as long as one, where N issued
//! one after another take N times as long (measured here: 64 files, one by one 2.9 ms each;
//! 8 at a time 0.5 ms each).
//!
//! The calling thread makes one sync and a few helper threads the others. The helpers are
//! kept for the life of the process: started when a commit first has several syncs to make,
//! then asleep on a condition variable, every signal blocked, until the next such commit. So
//! a commit costs no thread start (one start per helper per commit cost 15 µs of CPU per task
//! before, `bench/probe`), and an idle daemon's helpers never wake.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// Most syncs in flight at once (the calling thread's included).
pub const PARALLEL_SYNCS: usize = 8;

/// What to sync of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Its data, and the metadata needed to read it back (`fdatasync`).
    Data,
    /// Everything (`fsync`): for a folder, its entries.
    All,
}

/// One call's syncs: a slot per fd, and how many are still to come.
struct Call {
    state: Mutex<(Vec<Option<io::Result<()>>>, usize)>,
    done: Condvar,
}

struct Job {
    call: Arc<Call>,
    index: usize,
    fd: RawFd,
    how: Sync,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    helpers: usize,
}

#[derive(Default)]
struct Pool {
    queue: Mutex<Queue>,
    work: Condvar,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sync(fd: RawFd, how: Sync) -> io::Result<()> {
    // SAFETY: fsync/fdatasync on a descriptor the caller keeps open until `sync_all` returns;
    // a bad one is an error (EBADF), nothing worse.
    let rc = unsafe {
        match how {
            Sync::Data => libc::fdatasync(fd),
            Sync::All => libc::fsync(fd),
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Call {
    fn finish(&self, index: usize, result: io::Result<()>) {
        let mut state = lock(&self.state);
        state.0[index] = Some(result);
        state.1 -= 1;
        if state.1 == 0 {
            self.done.notify_all();
        }
    }
}

/// Syncs every `(fd, how)`, up to [`PARALLEL_SYNCS`] at once; the results in the same order.
/// The descriptors must stay open until it returns.
pub fn sync_all(fds: &[(RawFd, Sync)]) -> Vec<io::Result<()>> {
    if fds.len() <= 1 {
        return fds.iter().map(|&(fd, how)| sync(fd, how)).collect();
    }
    let call = Arc::new(Call {
        state: Mutex::new(((0..fds.len()).map(|_| None).collect(), fds.len())),
        done: Condvar::new(),
    });
    let pool = POOL.get_or_init(Pool::default);
    {
        let mut queue = lock(&pool.queue);
        for (index, &(fd, how)) in fds.iter().enumerate().skip(1) {
            queue.jobs.push_back(Job { call: call.clone(), index, fd, how });
        }
        let wanted = (fds.len() - 1).min(PARALLEL_SYNCS - 1);
        while queue.helpers < wanted && start_helper(pool) {
            queue.helpers += 1;
        }
        for _ in 0..wanted {
            pool.work.notify_one();
        }
    }
    call.finish(0, sync(fds[0].0, fds[0].1));
    // What no helper took (none could be started, or all are busy) is done here.
    while let Some(job) = take_own(pool, &call) {
        call.finish(job.index, sync(job.fd, job.how));
    }
    let mut state = lock(&call.state);
    while state.1 > 0 {
        state = call.done.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
    std::mem::take(&mut state.0)
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("sync not done"))))
        .collect()
}

fn take_own(pool: &Pool, call: &Arc<Call>) -> Option<Job> {
    let mut queue = lock(&pool.queue);
    let at = queue.jobs.iter().position(|j| Arc::ptr_eq(&j.call, call))?;
    queue.jobs.remove(at)
}

fn start_helper(pool: &'static Pool) -> bool {
    std::thread::Builder::new()
        .name("spool-sync".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            block_signals();
            loop {
                let job = {
                    let mut queue = lock(&pool.queue);
                    loop {
                        match queue.jobs.pop_front() {
                            Some(job) => break job,
                            None => queue = pool.work.wait(queue).unwrap_or_else(PoisonError::into_inner),
                        }
                    }
                };
                job.call.finish(job.index, sync(job.fd, job.how));
            }
        })
        .is_ok()
}

/// Blocks every signal in the calling thread: the daemons' signals (SIGCHLD at every agent's
/// exit, SIGTERM, SIGHUP) are then delivered to the event loop's thread, and never interrupt
/// (and wake) a thread that waits for the disk.
pub fn block_signals() {
    // SAFETY: a full set, and pthread_sigmask on the calling thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn every_sync_is_made_and_reported_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: Vec<std::fs::File> =
            (0..20).map(|i| std::fs::File::create(dir.path().join(i.to_string())).expect("create")).collect();
        // Every seventh is a descriptor that is not open: its error comes back in its place.
        let fds: Vec<(RawFd, Sync)> = files
            .iter()
            .enumerate()
            .map(|(i, f)| match i % 7 {
                0 => (-1, Sync::Data),
                1 => (f.as_raw_fd(), Sync::All),
                _ => (f.as_raw_fd(), Sync::Data),
            })
            .collect();
        for _ in 0..3 {
            let out = sync_all(&fds);
            assert_eq!(out.len(), 20);
            for (i, r) in out.iter().enumerate() {
                assert_eq!(r.is_err(), i % 7 == 0, "{i}: {r:?}");
            }
        }
        assert!(lock(&POOL.get().expect("pool").queue).helpers < PARALLEL_SYNCS);
    }
}
