//! The worker's event loop: one thread, one `mio::Poll` over the queue's arrival
//! notifications, the signal pipe, and the agents' pipes; every timer is the poll timeout.
//! Nothing here sleeps.
//!
//! A loop turn: wait → dispatch events → reap exited agents → fire due timers → start what
//! may start → commit the turn's writes in one group → tell systemd.
//!
//! The loop's state is grouped by what it is: the `Queue` it knows, the tasks `InFlight`, the
//! `Holds` that keep tasks from starting, the spool's `IoHealth`, its `Timers` (one table, in
//! `timers`) and what it `Reports`. Its decisions are pure functions (`policy`); the spool
//! ([`Spool`]) and the agents ([`Agents`]) are behind traits, so the loop runs against memory
//! and fake agents in tests.

pub mod breaker;
mod cancel;
mod contained;
mod failure;
mod http;
mod lifecycle;
mod outage;
mod outcome;
mod pause;
mod pipe;
mod policy;
mod preflight;
mod queue;
mod remote;
pub mod retry;
mod sessions;
mod settling;
pub mod state;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::time::{Duration, Instant, SystemTime};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::config::{Config, Layers};
use crate::error::Fatal;
use crate::format::task::Task;
use crate::log::Logger;
use crate::metrics::{Recorded, WorkerMetrics};
use crate::runner::agents::{Agents, Processes};
use crate::runner::supervise::Stop;
use crate::runner::{Containment, Pipe};
use crate::spool::{CancelRequest, Claim, EntryId, Spool};
use crate::sys::sd_notify::Notifier;
use crate::worker::breaker::Breaker;
use crate::worker::state::WorkerState;
use timers::Timers;

const SIGNALS: Token = Token(0);
const SPOOL: Token = Token(1);
/// The named-pipe intake (PIPE_INTAKE).
const PIPE: Token = Token(2);
/// The spool's writer finished a batch.
const WRITES: Token = Token(3);
/// An agent may have exited (agents that are not processes; processes tell by SIGCHLD).
const EXITS: Token = Token(4);
/// Agents' pipes: `CHILD_BASE + slot * 3 + pipe`.
const CHILD_BASE: usize = 16;

/// How long to wait before trying again a commit, a scan or a claim that failed.
const RETRY_IO: Duration = Duration::from_secs(1);
/// The safety rescan when RESCAN_INTERVAL is unset and the queue is on a network filesystem.
pub const AUTO_RESCAN: Duration = Duration::from_secs(5);
/// The same I/O error is logged again after this long at most (it is retried every second).
const ERROR_REPEAT: Duration = Duration::from_secs(60);

fn child_token(slot: usize, pipe: Pipe) -> Token {
    Token(CHILD_BASE + slot * 3 + pipe as usize)
}

/// Counters kept for the heartbeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub cancelled: u64,
}

/// A task whose agent is running (in the slot of the same index).
struct Running {
    claim: Claim,
    task: Task,
    queued_at: SystemTime,
    attempt: u32,
    started: Instant,
    started_wall: SystemTime,
    /// Its stop sequence: at its time limit, or by the shutdown (then re-queued, not charged).
    stop: Stop,
    /// The agent's session, when sessions are on.
    session: Option<sessions::RunSession>,
    /// Its task is being cancelled: the run is stopped, and ends as cancelled.
    cancel: Option<CancelRequest>,
}

/// A claimed task waiting for its retry time.
struct Waiting {
    claim: Claim,
    task: Task,
    queued_at: SystemTime,
}

/// What a finished task is waiting for: its outcome to be durable, then this is logged.
struct Finishing {
    /// The id to release from `ids` once durable.
    release: Option<String>,
    status: outcome::Final,
    message: String,
    fields: Vec<(&'static str, String)>,
    /// What the metrics count once it is durable.
    recorded: Recorded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Stopping: at `deadline` what still runs is stopped (`abandoned`).
    Draining {
        deadline: Instant,
        abandoned: bool,
    },
}

/// What the loop knows to be queued and not claimed yet.
#[derive(Default)]
struct Queue {
    /// Ids in arrival order, and the same as a set.
    order: VecDeque<(EntryId, SystemTime)>,
    known: HashSet<EntryId>,
    /// What is not a task, reported once.
    warned: HashSet<EntryId>,
    /// Task files held back because they may still be being written.
    settling: settling::Settling,
}

/// The tasks the worker holds claimed: running, waiting for a retry, or being finished.
#[derive(Default)]
struct InFlight {
    slots: Vec<Option<Running>>,
    active: usize,
    /// By retry time (and a sequence number, to keep ties apart).
    waiting: BTreeMap<(Instant, u64), Waiting>,
    seq: u64,
    /// Ids claimed and not yet durably finished: running, waiting, or being written.
    ids: HashSet<String>,
    /// Ended tasks whose outcome is being made durable, by claim key.
    finishing: HashMap<EntryId, Finishing>,
    /// Failed attempts whose saved state is not durable yet, by claim key, oldest first.
    retrying: HashMap<EntryId, VecDeque<Recorded>>,
    /// Alternates between due retries and new tasks, so neither starves.
    prefer_retry: bool,
    /// Requests to cancel a task not dropped yet, by task id: dropped once the task's final
    /// outcome is durable (a cancelled result, or any other that came first).
    cancels: HashMap<String, CancelRequest>,
}

/// What holds every start.
struct Holds {
    breaker: Breaker,
    /// A usage/rate limit or the spend cap.
    paused: Option<pause::Pause>,
    ledger: pause::Ledger,
    /// An outage of the agent's service holds the queue (announced once, at its start).
    outage: Option<outage::Outage>,
}

/// How the spool's I/O fares.
#[derive(Default)]
struct IoHealth {
    last_error: Option<String>,
    /// When each failing I/O operation's error was last logged (for ERROR_REPEAT).
    logged_errors: HashMap<String, Instant>,
    /// Outcomes could not be made durable: no new task starts until they are.
    writes_failing: bool,
    /// A claim failed for a reason of the queue, not of the task: none is tried before then.
    claims_paused_until: Option<Instant>,
}

/// What the worker tells of itself: heartbeat, metrics, counters.
struct Reports {
    hostname: String,
    started_at: SystemTime,
    stats: Stats,
    /// The state the last heartbeat staged told.
    heartbeat_status: Option<WorkerState>,
    /// When a heartbeat was last written durably.
    heartbeat_written: Instant,
    metrics: WorkerMetrics,
}

/// The event sources besides the spool and the agents.
struct Sources {
    signals: Signals,
    endpoint: Option<crate::http::Endpoint>,
    pipe: Option<pipe::PipeIntake>,
}

pub struct Daemon {
    cfg: Config,
    layers: Layers,
    log: Logger,
    spool: Box<dyn Spool>,
    agents: Box<dyn Agents>,
    poll: Poll,
    notifier: Notifier,
    sources: Sources,
    /// A read buffer for the pipes.
    scratch: Vec<u8>,
    phase: Phase,
    queue: Queue,
    flight: InFlight,
    holds: Holds,
    health: IoHealth,
    timers: Timers,
    report: Reports,
    /// An agent may have exited: reap this turn.
    reap_due: bool,
    /// The turn stopped claiming early: poll without waiting.
    more_work: bool,
    /// The filesystem of the queue, when inotify misses writes to it (see AUTO_RESCAN).
    remote: Option<&'static str>,
}

impl Daemon {
    /// Sets up the loop around an opened spool, with agents as child processes and the
    /// daemon's signals; nothing is read or run yet.
    pub fn new(cfg: Config, layers: Layers, log: Logger, spool: Box<dyn Spool>) -> Result<Daemon, Fatal> {
        let signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
            .map_err(|e| Fatal::Other(format!("cannot install signal handlers: {e}")))?;
        Daemon::with(cfg, layers, log, spool, Box::new(Processes::new(Containment::setup())), signals)
    }

    fn with(
        cfg: Config,
        layers: Layers,
        log: Logger,
        spool: Box<dyn Spool>,
        mut agents: Box<dyn Agents>,
        mut signals: Signals,
    ) -> Result<Daemon, Fatal> {
        let poll = Poll::new().map_err(|e| Fatal::Other(format!("cannot create the event loop: {e}")))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Fatal::Other(format!("cannot watch signals: {e}")))?;
        agents
            .register(poll.registry(), EXITS)
            .map_err(|e| Fatal::Other(format!("cannot watch the agents: {e}")))?;
        let metrics = WorkerMetrics::new(&cfg.worker)
            .map_err(|e| Fatal::Other(format!("cannot set up the metrics: {e}")))?;
        let mut endpoint = http::open(&cfg, &layers.env, &log)?;
        if let Some(ep) = endpoint.as_mut() {
            ep.server
                .register(poll.registry())
                .map_err(|e| Fatal::Other(format!("cannot watch the metrics socket: {e}")))?;
        }
        let hostname =
            nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let now = Instant::now();
        let remote = spool.notifications_unreliable();
        let t = &cfg.tuning;
        Ok(Daemon {
            layers,
            log,
            spool,
            agents,
            poll,
            notifier: Notifier::from_env(),
            sources: Sources { signals, endpoint, pipe: None },
            scratch: vec![0; 64 * 1024],
            phase: Phase::Running,
            queue: Queue::default(),
            flight: InFlight::default(),
            holds: Holds {
                breaker: Breaker::new(t.breaker_timeout, t.breaker_max_timeout),
                paused: None,
                ledger: pause::Ledger::default(),
                outage: None,
            },
            health: IoHealth::default(),
            timers: Timers::new(now, rescan_every(&cfg, remote).map(|d| now + d)),
            report: Reports {
                hostname,
                started_at: SystemTime::now(),
                stats: Stats::default(),
                heartbeat_status: None,
                heartbeat_written: now,
                metrics,
            },
            reap_due: false,
            more_work: false,
            remote,
            cfg,
        })
    }

    /// Runs until a shutdown has drained. Returns `Ok` for a clean stop.
    pub fn run(mut self) -> Result<(), Fatal> {
        self.preflight()?;
        if !self.await_spool()? {
            self.stopped();
            return Ok(());
        }
        self.start_up()?;
        let mut events = Events::with_capacity(256);
        while !self.drained() {
            self.step(&mut events, None)?;
        }
        self.stopped();
        Ok(())
    }

    /// Everything before the loop: the agent checked, the ledger read, crash recovery, the
    /// queue watched and listed, READY=1.
    fn start_up(&mut self) -> Result<(), Fatal> {
        self.load_ledger();
        self.recover()?;
        // Out of inotify watches (ENOSPC) is the host's limit, not a setting: a restart may
        // succeed.
        self.spool
            .register(self.poll.registry(), SPOOL, WRITES)
            .map_err(|e| Fatal::io(format!("TASK_DIR: {e}"), &e))?;
        self.announce_rescan();
        self.open_pipe()?;
        self.rescan().map_err(|e| Fatal::io(format!("TASK_DIR: cannot list the queue: {e}"), &e))?;
        self.schedule();
        self.flush();
        let status = self.status_line();
        let r = self.notifier.ready_as(self.state().status_word(), &status);
        self.report_notify(r);
        self.timers.watchdog = self.notifier.watchdog_interval().map(|d| Instant::now() + d);
        self.log.info(
            "ready",
            &[
                ("QUEUE_SIZE", &self.queued()),
                ("MAX_CONCURRENT", &self.cfg.tuning.max_concurrent),
                ("ROOT", &self.cfg.paths.root.display()),
                ("METRICS", &self.metrics_addresses().join(" ")),
                ("CONTAINMENT", &self.agents.describe()),
            ],
        );
        Ok(())
    }

    /// One turn: waits for events until the next deadline (at most `cap`), dispatches them,
    /// and does what follows. An interrupted wait is a turn without events or work.
    fn step(&mut self, events: &mut Events, cap: Option<Duration>) -> Result<(), Fatal> {
        let timeout = self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match (timeout, cap) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        };
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(Fatal::Other(format!("event loop failed: {e}")));
        }
        for event in events.iter() {
            self.dispatch(event.token());
        }
        self.turn();
        Ok(())
    }

    /// Everything after the events of a turn.
    fn turn(&mut self) {
        let now = Instant::now();
        // Exits are collected before deadlines are judged: an agent that ended while the loop
        // was not turning (the daemon stopped, a VM paused) is judged by its exit, not by a
        // deadline that the stall let pass. Its SIGCHLD may not have been read yet.
        if std::mem::take(&mut self.reap_due) || self.deadline_due(now) {
            self.reap();
        }
        self.fire_timers(now);
        self.sweep_orphans();
        self.more_work = false;
        self.schedule();
        self.flush();
    }

    fn dispatch(&mut self, token: Token) {
        match token {
            SIGNALS => self.on_signals(),
            SPOOL => self.on_intake(),
            t if self.owns_http(t) => self.on_http(t),
            PIPE => self.on_pipe(),
            // Written ops have outcomes: the turn's flush collects them.
            WRITES => {}
            EXITS => self.reap_due = true,
            Token(t) if t >= CHILD_BASE => {
                let (slot, pipe) = ((t - CHILD_BASE) / 3, (t - CHILD_BASE) % 3);
                if let Some(pipe) = Pipe::from_index(pipe) {
                    self.agents.ready(slot, pipe, self.poll.registry(), &mut self.scratch);
                }
            }
            _ => {}
        }
    }

    fn on_signals(&mut self) {
        let pending: Vec<i32> = self.sources.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGCHLD => self.reap_due = true,
                SIGHUP => self.reload(),
                SIGTERM | SIGINT => self.shutdown(),
                _ => {}
            }
        }
    }

    fn report_notify(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.log.warn("cannot notify systemd", &[("ERROR", &e)]);
        }
    }

    /// Logs an I/O error (the same one at most every ERROR_REPEAT, since failed operations
    /// are retried every second) and keeps it for the heartbeat's `last_error`.
    fn io_error(&mut self, what: &str, e: &io::Error) {
        self.io_error_with(what, e, &[]);
    }

    fn io_error_with(&mut self, what: &str, e: &io::Error, fields: &[crate::log::Field]) {
        let msg = format!("{what}: {e}");
        let now = Instant::now();
        let h = &mut self.health;
        let due = h.logged_errors.get(&msg).is_none_or(|t| now.duration_since(*t) >= ERROR_REPEAT);
        if due {
            h.logged_errors.insert(msg.clone(), now);
            self.log.error(&msg, fields);
        }
        self.health.last_error = Some(msg);
    }

    /// Every write of a commit succeeded and nothing waits: the errors are over.
    fn io_recovered(&mut self) {
        if self.health.claims_paused_until.is_some() {
            return;
        }
        if let Some(was) = self.health.last_error.take() {
            self.health.logged_errors.clear();
            self.log.info("writes succeed again; processing resumes", &[("ERROR", &was)]);
            self.stage_heartbeat();
        }
    }

    fn can_start(&self) -> bool {
        self.phase == Phase::Running
            && self.flight.active < self.cfg.tuning.max_concurrent
            && self.holds.breaker.may_start()
            && self.holds.paused.is_none()
            && !self.health.writes_failing
            && self.health.claims_paused_until.is_none()
    }

    fn drained(&self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Draining { abandoned, .. } => {
                self.flight.active == 0
                    && self.flight.waiting.is_empty()
                    && (!self.spool.has_pending() || abandoned)
                    && self.agents.settled(Instant::now())
            }
        }
    }
}

fn rescan_every(cfg: &Config, remote: Option<&'static str>) -> Option<Duration> {
    if cfg.tuning.rescan_auto {
        remote.map(|_| AUTO_RESCAN)
    } else {
        cfg.tuning.rescan_interval
    }
}
