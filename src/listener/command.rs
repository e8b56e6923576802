//! ORCHESTRATOR_NOTIFY_COMMAND: run once per event written, with the event's JSON on its
//! stdin, so an orchestrator can be woken instead of polling. Best effort and never in the
//! way: at most ORCHESTRATOR_NOTIFY_CONCURRENCY at once (the others queue, at most
//! [`MAX_QUEUED`], the oldest dropped beyond), each killed as a process group after
//! ORCHESTRATOR_NOTIFY_TIMEOUT, its failures logged and counted. The event file is the
//! durable record; a command queued when the listener stops is not run.
//!
//! Processes are [`crate::runner::Child`]: no shell, own process group, parent-death
//! signal, pipes read from the loop, NOTIFY_SOCKET/WATCHDOG_*/LISTEN_* removed; and, as the
//! worker's agents, contained ([`Containment`]): what a command leaves behind (a setsid'd
//! double fork) is killed when it ends, is killed, or the listener stops.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use mio::{Registry, Token};

use crate::runner::supervise::{Stop, Why};
use crate::runner::{Child, Containment, Exit, Mark, Pipe, Spec};

/// Events waiting for a free slot, at most.
pub const MAX_QUEUED: usize = 10_000;
/// Bytes of a command's stdout kept (it is only logged).
const MAX_OUTPUT: usize = 4096;

/// One command to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub event_id: String,
    pub kind: &'static str,
    pub path: String,
    pub worker: Option<String>,
    pub task_id: Option<String>,
    pub json: Vec<u8>,
}

struct Running {
    job: Job,
    child: Child,
    started: Instant,
    stop: Stop,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandOutcome {
    Ok,
    Failed(Exit),
    TimedOut,
    SpawnError(String),
}

impl CommandOutcome {
    /// The `outcome` label of `watcher_listener_notify_commands_total`.
    pub fn label(&self) -> &'static str {
        match self {
            CommandOutcome::Ok => "ok",
            CommandOutcome::Failed(_) => "failed",
            CommandOutcome::TimedOut => "timed_out",
            CommandOutcome::SpawnError(_) => "spawn_error",
        }
    }
}

/// A command that ended, for the log and the metrics.
pub struct Ended {
    pub job: Job,
    pub outcome: CommandOutcome,
    pub duration: Duration,
    pub stderr_tail: String,
}

/// The limits in force (from the live settings).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub argv: Vec<String>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub kill_grace: Duration,
}

pub struct Commands {
    queue: VecDeque<Job>,
    slots: Vec<Option<Running>>,
    scratch: Vec<u8>,
    /// Jobs dropped because the queue was full.
    pub dropped: u64,
    contain: Containment,
}

impl Commands {
    /// At most `max_slots` commands at once, whatever the setting says later; contained as
    /// `contain` decided at start-up.
    pub fn new(max_slots: usize, contain: Containment) -> Commands {
        Commands {
            queue: VecDeque::new(),
            slots: (0..max_slots).map(|_| None).collect(),
            scratch: vec![0; 16 * 1024],
            dropped: 0,
            contain,
        }
    }

    /// How commands are contained, for the start-up log.
    pub fn containment(&self) -> String {
        self.contain.describe()
    }

    /// Warnings of the containment since the last call.
    pub fn warnings(&mut self) -> Vec<String> {
        self.contain.take_warnings()
    }

    /// The running commands' pids, and the marks their orphans carry.
    fn marks(&self) -> Vec<Mark> {
        let mark = |r: &Running| Mark {
            pid: r.child.pid(),
            env: vec![("WATCHER_EVENT_ID".into(), r.job.event_id.clone())],
        };
        self.slots.iter().flatten().map(mark).collect()
    }

    /// Kills the orphans of ended commands (all of them when none runs), when due.
    pub fn sweep(&mut self) {
        let marks = self.marks();
        self.contain.sweep(|p| marks.iter().any(|m| m.pid == p), &marks);
    }

    /// Timers of the containment (removing killed cgroups).
    pub fn tick(&mut self, now: Instant) {
        self.contain.tick(now);
    }

    /// No killed cgroup left to wait for (see [`Containment::settled`]).
    pub fn settled(&self) -> bool {
        self.contain.settled(Instant::now())
    }

    /// At exit: whatever a command left is killed.
    pub fn shutdown(&mut self) {
        self.contain.shutdown(|_| false);
    }

    pub fn enqueue(&mut self, job: Job) {
        if self.queue.len() >= MAX_QUEUED {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(job);
    }

    pub fn running(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Forgets the queued jobs (at shutdown); returns how many.
    pub fn clear_queue(&mut self) -> usize {
        std::mem::take(&mut self.queue).len()
    }

    /// Starts queued jobs while slots are free. `token(slot, pipe)` names a pipe.
    pub fn start(
        &mut self,
        limits: &Limits,
        registry: &Registry,
        token: impl Fn(usize, Pipe) -> Token,
    ) -> Vec<Ended> {
        let mut failed = Vec::new();
        if limits.argv.is_empty() {
            self.queue.clear();
            return failed;
        }
        while self.running() < limits.concurrency {
            let Some(slot) = self.slots.iter().position(Option::is_none) else { break };
            let Some(job) = self.queue.pop_front() else { break };
            let now = Instant::now();
            match spawn(&job, &limits.argv, &mut self.contain) {
                Ok(child) => {
                    if child.register(registry, |p| token(slot, p)).is_err() {
                        // Unwatchable pipes: it dies now, and is reaped (and reported) as
                        // killed by SIGKILL.
                        child.kill_all();
                    }
                    let stop = Stop::new(now, limits.timeout);
                    self.slots[slot] = Some(Running { job, child, started: now, stop });
                }
                Err(e) => failed.push(ended(job, CommandOutcome::SpawnError(e.to_string()), now)),
            }
        }
        failed
    }

    pub fn on_ready(&mut self, slot: usize, pipe: Pipe, registry: &Registry) {
        if let Some(Some(run)) = self.slots.get_mut(slot) {
            run.child.on_ready(pipe, registry, &mut self.scratch);
        }
    }

    /// Reaps the commands that exited.
    pub fn reap(&mut self, registry: &Registry) -> Vec<Ended> {
        let mut out = Vec::new();
        for slot in 0..self.slots.len() {
            let exit = match self.slots[slot].as_mut().map(|r| r.child.try_exit()) {
                Some(Ok(Some(exit))) => exit,
                Some(Ok(None)) | None => continue,
                // ECHILD: reaped elsewhere; nothing more to learn.
                Some(Err(_)) => Exit::Code(-1),
            };
            let Some(mut run) = self.slots[slot].take() else { continue };
            self.contain.ended(&mut run.child);
            let captured = run.child.finish(registry, &mut self.scratch);
            // Stopped by us: its time was up, or the listener stopped it.
            let outcome = match (run.stop.why().is_some(), exit) {
                (true, _) => CommandOutcome::TimedOut,
                (false, Exit::Code(0)) => CommandOutcome::Ok,
                (false, e) => CommandOutcome::Failed(e),
            };
            out.push(Ended {
                job: run.job,
                outcome,
                duration: run.started.elapsed(),
                stderr_tail: captured.stderr_tail,
            });
        }
        let marks = self.marks();
        self.contain.reap_orphans(|p| marks.iter().any(|m| m.pid == p));
        out
    }

    /// Time-outs: SIGTERM to the group at the deadline, SIGKILL after `kill_grace`.
    pub fn enforce(&mut self, now: Instant, kill_grace: Duration) {
        for run in self.slots.iter_mut().flatten() {
            if let Some(signal) = run.stop.tick(now, kill_grace) {
                run.child.send(signal);
            }
        }
    }

    /// Kills every running command now (a second stop signal).
    pub fn kill_all(&mut self) {
        for run in self.slots.iter_mut().flatten() {
            if let Some(signal) = run.stop.kill(Why::Shutdown) {
                run.child.send(signal);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let stops = self.slots.iter().flatten().filter_map(|r| r.stop.next());
        stops.chain(self.contain.next_deadline()).min()
    }
}

fn ended(job: Job, outcome: CommandOutcome, started: Instant) -> Ended {
    Ended { job, outcome, duration: started.elapsed(), stderr_tail: String::new() }
}

fn spawn(job: &Job, argv: &[String], contain: &mut Containment) -> std::io::Result<Child> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("WATCHER_EVENT".into(), job.kind.into()),
        ("WATCHER_EVENT_ID".into(), job.event_id.clone().into()),
        ("WATCHER_EVENT_FILE".into(), job.path.clone().into()),
    ];
    if let Some(w) = &job.worker {
        env.push(("WATCHER_WORKER".into(), w.clone().into()));
    }
    if let Some(t) = &job.task_id {
        env.push(("WATCHER_TASK_ID".into(), t.clone().into()));
    }
    let spec = Spec {
        argv: argv.iter().map(OsString::from).collect(),
        env,
        unset: Vec::new(),
        stdin: job.json.clone(),
        max_output: MAX_OUTPUT,
    };
    contain.spawn(spec, &format!("notify-{}", job.event_id))
}
