//! The seam between the worker's loop and the agent processes: the loop says which slot runs
//! what, forwards readiness of the agents' pipes, sends stop signals and asks for exits;
//! [`Agents`] does the rest. [`Processes`] runs real children ([`Child`]), contained
//! (`Containment`) so that nothing they start outlives their runs; a test can run the loop
//! against agents that are not processes at all (they leave nothing behind, and keep the
//! containment methods' defaults).

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use mio::{Registry, Token};

use super::supervise::Signal;
use super::{Captured, Child, Containment, Exit, Mark, Pipe, Spec};

/// The agents of one loop, by slot.
pub trait Agents {
    /// Registers what tells the loop that an agent may have exited (`exits`). Real processes
    /// are told by SIGCHLD, through the loop's own signal pipe, so they register nothing.
    fn register(&mut self, registry: &Registry, exits: Token) -> io::Result<()>;
    /// Starts `spec` in the free `slot`, its pipes registered with `registry` under
    /// `token(pipe)`. Returns its process id. On an error nothing runs in `slot`.
    fn start(
        &mut self,
        slot: usize,
        spec: Spec,
        registry: &Registry,
        token: &dyn Fn(Pipe) -> Token,
    ) -> io::Result<i32>;
    /// A pipe of the agent in `slot` is ready; `scratch` is a reusable read buffer.
    fn ready(&mut self, slot: usize, pipe: Pipe, registry: &Registry, scratch: &mut [u8]);
    /// Sends `signal` to the agent in `slot`: SIGTERM to its process group; SIGKILL to all
    /// of its run.
    fn signal(&mut self, slot: usize, signal: Signal);
    /// How the agent in `slot` ended, once it has (it is reaped then).
    fn try_exit(&mut self, slot: usize) -> io::Result<Option<Exit>>;
    /// After its exit: kills what is left of its run, and returns what the agent in `slot`
    /// printed; the slot is free again.
    fn finish(&mut self, slot: usize, registry: &Registry, scratch: &mut [u8]) -> Captured;

    /// How agents are contained, for the start-up log.
    fn describe(&self) -> String {
        "not processes: nothing to contain".into()
    }
    /// The cgroup of the run in `slot`, when it has one.
    fn cgroup(&self, _slot: usize) -> Option<PathBuf> {
        None
    }
    /// After the loop reaped its agents: reaps the orphans that exited.
    fn reap_orphans(&mut self) {}
    /// A sweep of orphans at the next [`Agents::sweep`].
    fn sweep_soon(&mut self) {}
    /// If a sweep is due: kills the orphans of runs that ended.
    fn sweep(&mut self) {}
    /// When [`Agents::tick`] has something to do (removing killed cgroups).
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn tick(&mut self, _now: Instant) {}
    /// No killed cgroup is left to wait for: a stopping loop may end.
    fn settled(&self, _now: Instant) -> bool {
        true
    }
    /// At exit, when no agent runs: whatever they left is killed.
    fn shutdown(&mut self) {}
    /// Warnings to log since the last call.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// The variables of a run's environment that mark what it starts (its orphans carry them),
/// and name its cgroup (`task-ID-ATTEMPT`).
const MARKS: [&str; 2] = ["WATCHER_TASK_ID", "WATCHER_ATTEMPT"];

/// A running child and the marks its orphans carry.
#[derive(Debug)]
struct Run {
    child: Child,
    mark: Mark,
}

/// Agents as child processes, contained as `Containment` decided at start-up.
#[derive(Debug)]
pub struct Processes {
    runs: Vec<Option<Run>>,
    contain: Containment,
}

impl Processes {
    pub(crate) fn new(contain: Containment) -> Processes {
        Processes { runs: Vec::new(), contain }
    }

    fn child(&mut self, slot: usize) -> Option<&mut Child> {
        self.runs.get_mut(slot).and_then(Option::as_mut).map(|r| &mut r.child)
    }

    /// The running agents' pids (not orphans), and the marks their orphans carry.
    fn marks(&self) -> Vec<Mark> {
        self.runs.iter().flatten().map(|r| r.mark.clone()).collect()
    }
}

/// `spec`'s values of [`MARKS`], and the run's label made of them.
fn marks_of(spec: &Spec) -> (Vec<(String, String)>, String) {
    let env: Vec<(String, String)> = MARKS
        .iter()
        .filter_map(|name| {
            let (_, v) = spec.env.iter().find(|(k, _)| k == name)?;
            Some((name.to_string(), v.to_string_lossy().into_owned()))
        })
        .collect();
    let label = env.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join("-");
    (env, label)
}

impl Agents for Processes {
    fn register(&mut self, _registry: &Registry, _exits: Token) -> io::Result<()> {
        Ok(())
    }

    fn start(
        &mut self,
        slot: usize,
        spec: Spec,
        registry: &Registry,
        token: &dyn Fn(Pipe) -> Token,
    ) -> io::Result<i32> {
        let (env, label) = marks_of(&spec);
        let mut child = self.contain.spawn(spec, &label)?;
        if let Err(e) = child.register(registry, token) {
            // Killed, and reaped as an orphan: it is in no slot.
            child.kill_all();
            self.contain.ended(&mut child);
            let _ = child.finish(registry, &mut []);
            return Err(e);
        }
        let pid = child.pid();
        if self.runs.len() <= slot {
            self.runs.resize_with(slot + 1, || None);
        }
        self.runs[slot] = Some(Run { child, mark: Mark { pid, env } });
        Ok(pid)
    }

    fn ready(&mut self, slot: usize, pipe: Pipe, registry: &Registry, scratch: &mut [u8]) {
        if let Some(child) = self.child(slot) {
            child.on_ready(pipe, registry, scratch);
        }
    }

    fn signal(&mut self, slot: usize, signal: Signal) {
        if let Some(child) = self.child(slot) {
            child.send(signal);
        }
    }

    fn try_exit(&mut self, slot: usize) -> io::Result<Option<Exit>> {
        match self.child(slot) {
            Some(child) => child.try_exit(),
            None => Ok(None),
        }
    }

    fn finish(&mut self, slot: usize, registry: &Registry, scratch: &mut [u8]) -> Captured {
        match self.runs.get_mut(slot).and_then(Option::take) {
            Some(mut run) => {
                self.contain.ended(&mut run.child);
                run.child.finish(registry, scratch)
            }
            None => Captured::default(),
        }
    }

    fn describe(&self) -> String {
        self.contain.describe()
    }

    fn cgroup(&self, slot: usize) -> Option<PathBuf> {
        let run = self.runs.get(slot)?.as_ref()?;
        run.child.cgroup_path().map(PathBuf::from)
    }

    fn reap_orphans(&mut self) {
        let marks = self.marks();
        self.contain.reap_orphans(|p| marks.iter().any(|m| m.pid == p));
    }

    fn sweep_soon(&mut self) {
        self.contain.sweep_soon();
    }

    fn sweep(&mut self) {
        let marks = self.marks();
        self.contain.sweep(|p| marks.iter().any(|m| m.pid == p), &marks);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.contain.next_deadline()
    }

    fn tick(&mut self, now: Instant) {
        self.contain.tick(now);
    }

    fn settled(&self, now: Instant) -> bool {
        self.contain.settled(now)
    }

    fn shutdown(&mut self) {
        let marks = self.marks();
        self.contain.shutdown(|p| marks.iter().any(|m| m.pid == p));
    }

    fn take_warnings(&mut self) -> Vec<String> {
        self.contain.take_warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[(&str, &str)]) -> Spec {
        Spec {
            argv: vec!["agent".into()],
            env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
            unset: vec![],
            stdin: vec![],
            max_output: 10,
        }
    }

    #[test]
    fn a_runs_marks_and_cgroup_label_come_from_its_task_id_and_attempt() {
        let s = spec(&[("WATCHER_WORKER", "marie"), ("WATCHER_ATTEMPT", "3"), ("WATCHER_TASK_ID", "t1")]);
        let (env, label) = marks_of(&s);
        let want = [("WATCHER_TASK_ID", "t1"), ("WATCHER_ATTEMPT", "3")];
        assert_eq!(env, want.map(|(k, v)| (k.to_string(), v.to_string())));
        // The cgroup is task-t1-3 (runner::cgroup adds the prefix).
        assert_eq!(label, "t1-3");
        assert_eq!(marks_of(&spec(&[])), (vec![], String::new()));
    }
}
