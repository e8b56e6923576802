//! What keeps an agent's processes from outliving its run, whatever they do (setsid, double
//! fork): a cgroup per run where systemd delegated a cgroup subtree to the daemon
//! (`Delegate=yes`, [`cgroup`]), else the daemon as child subreaper ([`orphans`]). Chosen once
//! at start-up; both daemons use it for every process they start.
//!
//! Nothing here blocks: a killed cgroup is removed once empty, retried on a timer the loop
//! polls with ([`Containment::next_deadline`], [`Containment::tick`]).

use std::io;
use std::time::{Duration, Instant};

use super::cgroup::{self, Tree};
use super::orphans::{self, Mark};
use super::{Child, Spec};

/// First wait before trying again to remove a killed cgroup; doubled up to [`REMOVE_EVERY`].
const REMOVE_FIRST: Duration = Duration::from_millis(10);
const REMOVE_EVERY: Duration = Duration::from_secs(1);
/// A killed cgroup still populated after this long is reported (once).
const STUCK_AFTER: Duration = Duration::from_secs(10);
/// How long a stopping daemon waits for its killed cgroups to empty, so that it leaves none.
const SETTLE_AT_EXIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Mode {
    /// Each run in a cgroup of its own under this delegated subtree.
    Cgroups(Tree),
    /// The daemon is the subreaper of its agents' orphans.
    Subreaper,
    /// Neither could be set up: process groups and the parent-death signal only.
    Loose,
}

/// A killed run cgroup waiting to be empty.
#[derive(Debug)]
struct Dying {
    run: cgroup::Run,
    killed: Instant,
    next: Instant,
    every: Duration,
    reported: bool,
}

#[derive(Debug)]
pub struct Containment {
    mode: Mode,
    dying: Vec<Dying>,
    sweep_due: bool,
    /// Why the cgroup way was not taken, for the start-up log.
    why_not_cgroups: Option<String>,
    warnings: Vec<String>,
}

impl Containment {
    /// At start-up, before any child: the delegated cgroup if there is one (the daemon moves
    /// into its `supervisor` leaf), else the subreaper.
    pub fn setup() -> Containment {
        let mut c = Containment {
            mode: Mode::Loose,
            dying: Vec::new(),
            sweep_due: false,
            why_not_cgroups: None,
            warnings: Vec::new(),
        };
        match Tree::enter() {
            Ok(tree) => {
                let now = Instant::now();
                for run in tree.leftovers() {
                    c.kill_and_remove(run, now);
                }
                c.mode = Mode::Cgroups(tree);
            }
            Err(why) => {
                c.why_not_cgroups = Some(why);
                c.mode = match orphans::become_subreaper() {
                    Ok(()) => Mode::Subreaper,
                    Err(e) => {
                        c.warnings.push(format!("cannot become the subreaper of the agents' processes: {e}"));
                        Mode::Loose
                    }
                };
            }
        }
        c
    }

    /// One line for the start-up log: how agents are contained, and why not by cgroup.
    pub fn describe(&self) -> String {
        let why = self.why_not_cgroups.as_deref().unwrap_or_default();
        match &self.mode {
            Mode::Cgroups(tree) => format!("a cgroup per run under {}", tree.path().display()),
            Mode::Subreaper => format!("the daemon is the subreaper of the agents' orphans ({why})"),
            Mode::Loose => format!("process groups only ({why})"),
        }
    }

    /// Warnings to log since the last call.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Starts `spec`, in a cgroup of its own named after `label` when there are cgroups. A
    /// cgroup that cannot be made is a warning, and the agent runs without it.
    pub fn spawn(&mut self, spec: Spec, label: &str) -> io::Result<Child> {
        let Mode::Cgroups(tree) = &self.mode else { return Child::spawn(spec) };
        match tree.create(label) {
            Ok(run) => Child::spawn_in(spec, Some(run)),
            Err(e) => {
                self.warnings
                    .push(format!("cannot create the cgroup of run {label}: {e}; it runs without one"));
                Child::spawn(spec)
            }
        }
    }

    /// After the child's exit was seen: kills what is left of its run (its cgroup, or its
    /// orphans at the next [`Containment::sweep`]).
    pub fn ended(&mut self, child: &mut Child) {
        match child.take_cgroup() {
            Some(run) => self.kill_and_remove(run, Instant::now()),
            None => self.sweep_due = matches!(self.mode, Mode::Subreaper),
        }
    }

    fn kill_and_remove(&mut self, run: cgroup::Run, now: Instant) {
        if let Err(e) = run.kill() {
            self.warnings.push(format!("cannot kill the cgroup {}: {e}", run.path().display()));
        }
        if !matches!(run.remove(), Ok(true)) {
            let d =
                Dying { run, killed: now, next: now + REMOVE_FIRST, every: REMOVE_FIRST, reported: false };
            self.dying.push(d);
        }
    }

    /// Reaps exited orphans (children `known` does not claim); a sweep follows, since their
    /// own children were just orphaned.
    pub fn reap_orphans(&mut self, known: impl Fn(i32) -> bool) {
        if orphans::reap(known) > 0 {
            self.sweep_due = matches!(self.mode, Mode::Subreaper);
        }
    }

    /// A sweep of orphans at the next [`Containment::sweep`] (the heartbeat asks for one).
    pub fn sweep_soon(&mut self) {
        self.sweep_due = matches!(self.mode, Mode::Subreaper);
    }

    /// If one is due: kills the orphans that belong to no agent of `running` (all of them
    /// when nothing runs).
    pub fn sweep(&mut self, known: impl Fn(i32) -> bool, running: &[Mark]) {
        if std::mem::take(&mut self.sweep_due) {
            orphans::sweep(known, running);
        }
    }

    /// Every killed cgroup is removed, or has had [`SETTLE_AT_EXIT`] to empty: a stopping
    /// daemon may exit.
    pub fn settled(&self, now: Instant) -> bool {
        self.dying.iter().all(|d| now.duration_since(d.killed) >= SETTLE_AT_EXIT)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.dying.iter().map(|d| d.next).min()
    }

    /// Tries again to remove the killed cgroups that are due.
    pub fn tick(&mut self, now: Instant) {
        let mut warnings = Vec::new();
        self.dying.retain_mut(|d| {
            if now < d.next {
                return true;
            }
            match d.run.remove() {
                Ok(true) => return false,
                Ok(false) => {}
                Err(e) => warnings.push(format!("cannot remove the cgroup {}: {e}", d.run.path().display())),
            }
            // Without cgroup.kill a process forked meanwhile needs its own SIGKILL.
            let _ = d.run.kill();
            if !d.reported && now.duration_since(d.killed) >= STUCK_AFTER {
                d.reported = true;
                warnings.push(format!(
                    "the cgroup {} still has processes {}s after it was killed (stuck in the kernel?); it is removed once they are gone",
                    d.run.path().display(),
                    STUCK_AFTER.as_secs()
                ));
            }
            d.every = (d.every * 2).min(REMOVE_EVERY);
            d.next = now + d.every;
            true
        });
        self.warnings.extend(warnings);
    }

    /// At exit: every orphan is killed, and every killed cgroup removed if it is empty by now
    /// (systemd removes the rest with the unit's cgroup).
    pub fn shutdown(&mut self, known: impl Fn(i32) -> bool) {
        if matches!(self.mode, Mode::Subreaper) {
            orphans::sweep(&known, &[]);
            orphans::reap(known);
        }
        for d in std::mem::take(&mut self.dying) {
            let _ = d.run.kill();
            let _ = d.run.remove();
        }
    }
}
