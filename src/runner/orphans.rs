//! Where no cgroup is delegated: the daemon is a child subreaper (PR_SET_CHILD_SUBREAPER), so
//! what an agent leaves behind (a setsid'd double fork) is reparented to the daemon instead of
//! init. The daemon reaps those orphans, and kills those of runs that have ended.
//!
//! An orphan belongs to a running agent when its session or process group is the agent's, or
//! its environment still holds the run's marks (WATCHER_TASK_ID and WATCHER_ATTEMPT of a
//! worker's run, WATCHER_EVENT_ID of a listener's command): those are left alone. One with the
//! marks of a run that is not running any more is killed with all its descendants. One with no
//! marks at all (it cleared its environment) cannot be told apart: it is killed once no run is
//! running.

use std::collections::HashMap;
use std::fs;
use std::io::Read;

/// How much of a process's environment is read to find the marks.
const ENVIRON_BYTES: u64 = 256 * 1024;

/// A running agent and the variables that mark what it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub pid: i32,
    pub env: Vec<(String, String)>,
}

/// Makes the daemon the reaper of its descendants' orphans.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with an integer option and argument.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What /proc/PID/stat says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    ppid: i32,
    pgrp: i32,
    session: i32,
    zombie: bool,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The fields after the command name, which may hold spaces and parentheses itself.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        zombie: *f.first()? == "Z",
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
    })
}

/// Every process visible in /proc, with its parent.
fn processes() -> HashMap<i32, Stat> {
    let Ok(rd) = fs::read_dir("/proc") else { return HashMap::new() };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// Whether `pid`'s environment holds every `NAME=value` of `marks`.
fn has_marks(environ: &[u8], marks: &[(String, String)]) -> bool {
    marks.iter().all(|(k, v)| {
        let want = format!("{k}={v}");
        environ.split(|b| *b == 0).any(|kv| kv == want.as_bytes())
    })
}

fn environ(pid: i32) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(f) = fs::File::open(format!("/proc/{pid}/environ")) {
        let _ = f.take(ENVIRON_BYTES).read_to_end(&mut buf);
    }
    buf
}

/// What to do with one orphan.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    Kill,
}

fn judge(pid: i32, st: &Stat, running: &[Mark], idle: bool) -> Verdict {
    if idle {
        return Verdict::Kill;
    }
    if running.iter().any(|m| m.pid == st.pgrp || m.pid == st.session) {
        return Verdict::Keep;
    }
    let env = environ(pid);
    if running.iter().any(|m| has_marks(&env, &m.env)) {
        return Verdict::Keep;
    }
    // The names of the marks, with any value: a run's, but not a running one's.
    let names = running.first().map(|m| m.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());
    let marked = names.is_some_and(|names| {
        names.iter().all(|k| env.split(|b| *b == 0).any(|kv| kv.starts_with(format!("{k}=").as_bytes())))
    });
    if marked {
        Verdict::Kill
    } else {
        Verdict::Keep
    }
}

/// `root` and everything below it, deepest first (so none is orphaned before it is killed).
fn subtree(root: i32, all: &HashMap<i32, Stat>) -> Vec<i32> {
    let mut order = vec![root];
    let mut i = 0;
    while i < order.len() && order.len() < 100_000 {
        let parent = order[i];
        order.extend(all.iter().filter(|(_, s)| s.ppid == parent).map(|(p, _)| *p));
        i += 1;
    }
    order.reverse();
    order
}

/// Whether the daemon has a child that `known` does not claim, from the main thread's
/// /proc/self/task/PID/children: agents are started from the main thread, and orphans go to
/// it (the kernel gives them to the reaper's first live thread). True where the kernel has
/// no such file: then /proc is scanned.
fn has_orphans(known: &impl Fn(i32) -> bool) -> bool {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut text = String::new();
    let read = fs::File::open(format!("/proc/self/task/{me}/children"))
        .and_then(|mut f| f.read_to_string(&mut text));
    if read.is_err() {
        return true;
    }
    text.split_whitespace().filter_map(|p| p.parse().ok()).any(|p| !known(p))
}

/// Kills the orphans (the daemon's children that `known` does not claim) that belong to no
/// running agent, with their descendants; with `running` empty, every orphan. Returns how many
/// processes were sent SIGKILL.
pub fn sweep(known: impl Fn(i32) -> bool, running: &[Mark]) -> usize {
    if !has_orphans(&known) {
        return 0;
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let all = processes();
    let mut killed = 0;
    for (pid, st) in all.iter().filter(|(p, s)| s.ppid == me && !s.zombie && !known(**p)) {
        if judge(*pid, st, running, running.is_empty()) == Verdict::Keep {
            continue;
        }
        for victim in subtree(*pid, &all) {
            // SAFETY: kill has no memory-safety preconditions. The orphan is our child: its
            // pid cannot be reused before we reap it.
            if unsafe { libc::kill(victim, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}

/// Reaps the daemon's exited children that `known` does not claim (orphans); stops at the
/// first exited child it claims, which its owner reaps. Returns how many were reaped.
pub fn reap(known: impl Fn(i32) -> bool) -> usize {
    let mut reaped = 0;
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: info is valid for the call.
        if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) } != 0 {
            return reaped;
        }
        // SAFETY: waitid filled info, or left it zeroed (si_pid 0: none has exited).
        let pid = unsafe { info.si_pid() };
        if pid == 0 || known(pid) {
            return reaped;
        }
        let mut status = 0;
        // SAFETY: pid has exited; this does not block.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            reaped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parentheses_in_the_name() {
        let st = parse_stat("4242 (my (odd) name) S 1 4242 4242 0 -1 4194560").expect("stat");
        assert_eq!(st, Stat { ppid: 1, pgrp: 4242, session: 4242, zombie: false });
        assert!(parse_stat("7 (x) Z 3 7 7").expect("stat").zombie);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn marks_are_whole_assignments() {
        let env = b"A=1\0WATCHER_TASK_ID=t1\0WATCHER_ATTEMPT=2\0";
        let mark = |id: &str, n: &str| {
            vec![
                ("WATCHER_TASK_ID".to_string(), id.to_string()),
                ("WATCHER_ATTEMPT".to_string(), n.to_string()),
            ]
        };
        assert!(has_marks(env, &mark("t1", "2")));
        assert!(!has_marks(env, &mark("t1", "1")));
        assert!(!has_marks(env, &mark("t", "2")));
    }

    #[test]
    fn subtree_is_deepest_first() {
        let s = |ppid| Stat { ppid, pgrp: 0, session: 0, zombie: false };
        let all: HashMap<i32, Stat> =
            [(10, s(1)), (11, s(10)), (12, s(11)), (20, s(1))].into_iter().collect();
        assert_eq!(subtree(10, &all), vec![12, 11, 10]);
    }
}
