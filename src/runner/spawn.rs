//! Starting a process the way glibc's posix_spawn does — clone(CLONE_VM | CLONE_VFORK), so
//! the daemon's page tables are never copied — plus what posix_spawn cannot do: a
//! parent-death signal. `fork` + `exec` (what `std::process::Command` falls back to once a
//! `pre_exec` hook is set) copied the daemon's address space for every task and then threw it
//! away at `execve`: half the daemon's CPU per task went there.
//!
//! The child runs on a stack of its own in the daemon's memory while the calling thread is
//! suspended, until `execve` succeeds or the child exits. It calls only async-signal-safe
//! system-call wrappers on data prepared beforehand, and allocates nothing.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The child's stack. Its work is a few system calls; glibc's posix_spawn uses about as much.
const STACK_BYTES: usize = 64 * 1024;

thread_local! {
    /// The child's stack, one per spawning thread (the event loop), allocated once: only the
    /// few pages the child touches are ever resident.
    static STACK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; STACK_BYTES]);
}

/// Where a program without a slash is looked for when no PATH is set (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// A started process: its pid and the parent's ends of its three pipes (close-on-exec).
pub struct Spawned {
    pub pid: i32,
    pub stdin: File,
    pub stdout: File,
    pub stderr: File,
}

/// Everything the child needs, prepared before the clone.
struct ChildArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// The child's ends: stdin read, stdout write, stderr write.
    fds: [RawFd; 3],
    parent: libc::pid_t,
    /// `cgroup.procs` of the cgroup to move into before execve, or -1.
    cgroup_procs: RawFd,
    /// Set by the child when it fails before or at execve; read after it has gone.
    errno: libc::c_int,
    /// Set by the child when what failed is the move into its cgroup.
    in_cgroup: bool,
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in an argument or variable"))
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = cstring(p.as_os_str()) else { return false };
    // SAFETY: c is a valid NUL-terminated path.
    let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    ok && p.metadata().is_ok_and(|m| m.is_file())
}

/// Finds `program` as execvp would: itself when it has a slash, else in `path`. NotFound when
/// nothing matches, PermissionDenied when only non-executable files do.
pub fn find_program(program: &OsStr, path: Option<&OsStr>) -> io::Result<CString> {
    if program.as_bytes().contains(&b'/') {
        return cstring(program);
    }
    let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut denied = false;
    for dir in path.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(program);
        if is_executable(&candidate) {
            return cstring(candidate.as_os_str());
        }
        denied |= candidate.exists();
    }
    let kind = if denied { io::ErrorKind::PermissionDenied } else { io::ErrorKind::NotFound };
    Err(io::Error::new(kind, format!("{} not found in PATH", program.to_string_lossy())))
}

/// A pipe whose both ends are close-on-exec and above the standard descriptors, so that
/// placing the child's ends on 0, 1 and 2 can never overwrite another of them.
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::with_capacity(2);
    for fd in fds {
        // SAFETY: fd was just returned by pipe2 and is owned by nothing else.
        let mut file = unsafe { File::from_raw_fd(fd) };
        if fd < 3 {
            // SAFETY: fcntl on an fd we own.
            let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if high < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: high is a new descriptor owned by nothing else; the low one is dropped.
            file = unsafe { File::from_raw_fd(high) };
        }
        out.push(file);
    }
    let write = out.pop();
    match (out.pop(), write) {
        (Some(r), Some(w)) => Ok((r, w)),
        _ => Err(io::Error::other("pipe2 returned no descriptors")),
    }
}

/// The child, between clone and execve. Only raw system-call wrappers: it shares the daemon's
/// memory (and its thread-local errno, harmlessly: that thread is suspended).
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg points at the ChildArgs the suspended parent keeps alive until we exec or exit.
    let a = unsafe { &mut *(arg as *mut ChildArgs) };
    let fail = |a: &mut ChildArgs| -> libc::c_int {
        // SAFETY: errno location is valid; the parent reads `a.errno` only after we are gone.
        unsafe {
            a.errno = (*libc::__errno_location()).max(1);
            libc::_exit(127)
        }
    };
    // SAFETY: every call below is an async-signal-safe system call on valid arguments.
    unsafe {
        // Into its run's cgroup first ("0" is the writer itself), so that nothing it ever
        // starts is outside it.
        if a.cgroup_procs >= 0 && libc::write(a.cgroup_procs, b"0".as_ptr().cast(), 1) != 1 {
            a.in_cgroup = true;
            return fail(a);
        }
        // Handlers installed by the daemon must not run in this copy of it: reset them (the
        // parent blocked every signal around the clone), and SIGPIPE, which Rust ignores.
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            if old.sa_sigaction != libc::SIG_DFL
                && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        for (target, fd) in a.fds.iter().enumerate() {
            if libc::dup2(*fd, target as RawFd) < 0 {
                return fail(a);
            }
        }
        // Its own process group, so that a time-out can signal all it started.
        if libc::setpgid(0, 0) != 0 {
            return fail(a);
        }
        // No agent outlives a killed daemon; and the daemon may have died already.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return fail(a);
        }
        if libc::getppid() != a.parent {
            *libc::__errno_location() = libc::ESRCH;
            return fail(a);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
        fail(a)
    }
}

/// Starts `argv` with exactly the environment `env` (`K=V` strings), stdin/stdout/stderr on
/// pipes, in its own process group, with SIGKILL as its parent-death signal; with
/// `cgroup_procs` (an open `cgroup.procs`), in that cgroup.
pub fn spawn(
    argv: &[OsString],
    env: &[OsString],
    path: Option<&OsStr>,
    cgroup_procs: Option<RawFd>,
) -> io::Result<Spawned> {
    let Some(program) = argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty agent command"));
    };
    let program = find_program(program, path)?;
    let args = argv.iter().map(|a| cstring(a)).collect::<io::Result<Vec<_>>>()?;
    let vars = env.iter().map(|v| cstring(v)).collect::<io::Result<Vec<_>>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = vars.iter().map(|v| v.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());

    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let mut args = ChildArgs {
        path: program.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp_ptrs.as_ptr(),
        fds: [stdin_r.as_raw_fd(), stdout_w.as_raw_fd(), stderr_w.as_raw_fd()],
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        cgroup_procs: cgroup_procs.unwrap_or(-1),
        errno: 0,
        in_cgroup: false,
    };
    let (pid, errno) = STACK.with_borrow_mut(|stack| clone_child(stack, &mut args))?;
    drop((stdin_r, stdout_w, stderr_w));
    if errno != 0 {
        let mut status = 0;
        // SAFETY: the child has exited (_exit after a failure); this reaps it.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let e = io::Error::from_raw_os_error(errno);
        // SAFETY: a volatile read of a field the child may have written.
        if unsafe { std::ptr::read_volatile(&args.in_cgroup) } {
            return Err(io::Error::new(e.kind(), format!("cannot move into its cgroup: {e}")));
        }
        return Err(e);
    }
    Ok(Spawned { pid, stdin: stdin_w, stdout: stdout_r, stderr: stderr_r })
}

/// Runs [`child`] on `stack` and returns its pid and the errno it left (0 after an exec).
fn clone_child(stack: &mut [u8], args: &mut ChildArgs) -> io::Result<(libc::pid_t, libc::c_int)> {
    // The stack grows down: hand clone its 16-byte-aligned top.
    let top = {
        let end = stack.as_mut_ptr() as usize + stack.len();
        (end & !15) as *mut libc::c_void
    };
    // SAFETY: the masks are valid out-parameters; blocking every signal around the clone keeps
    // the daemon's handlers from running in the child before it has reset them.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
        // SAFETY: `child` only reads `args` and writes `args.errno`; CLONE_VFORK suspends this
        // thread until the child has exec'd or exited, so `args`, the pointer arrays and
        // `stack` outlive its use of them.
        let pid = libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            args as *mut ChildArgs as *mut libc::c_void,
        );
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
        if pid < 0 {
            return Err(err);
        }
        pid
    };
    // SAFETY: a volatile read of a field the child may have written through its own pointer.
    let errno = unsafe { std::ptr::read_volatile(&args.errno) };
    Ok((pid, errno))
}
