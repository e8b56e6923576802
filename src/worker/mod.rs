//! The worker's event loop: one thread, one `mio::Poll` over the queue's inotify fd, the
//! signal pipe, and the agents' pipes; every timer is the poll timeout. Nothing here sleeps.
//!
//! A loop turn: wait → dispatch events → reap exited agents → fire due timers → start what
//! may start → commit the turn's writes in one group → tell systemd.

pub mod breaker;
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
pub mod retry;
mod settling;
pub mod state;

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
use crate::runner::supervise::Stop;
use crate::runner::{Child, Pipe};
use crate::spool::{Claim, EntryId, Spool};
use crate::sys::sd_notify::Notifier;
use crate::worker::breaker::Breaker;
use crate::worker::state::WorkerState;

const SIGNALS: Token = Token(0);
const SPOOL: Token = Token(1);
/// The named-pipe intake (PIPE_INTAKE).
const PIPE: Token = Token(2);
/// The spool's writer finished a batch.
const WRITES: Token = Token(3);
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
}

/// A task whose agent is running.
struct Running {
    claim: Claim,
    task: Task,
    queued_at: SystemTime,
    child: Child,
    attempt: u32,
    started: Instant,
    started_wall: SystemTime,
    /// Its stop sequence: at its time limit, or by the shutdown (then re-queued, not charged).
    stop: Stop,
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

pub struct Daemon {
    cfg: Config,
    layers: Layers,
    log: Logger,
    spool: Box<dyn Spool>,
    poll: Poll,
    signals: Signals,
    notifier: Notifier,
    hostname: String,
    started_at: SystemTime,
    /// Known queued names, in arrival order, and the same as a set.
    queue: VecDeque<(EntryId, SystemTime)>,
    queued: HashSet<EntryId>,
    slots: Vec<Option<Running>>,
    active: usize,
    waiting: BTreeMap<(Instant, u64), Waiting>,
    /// Ids claimed and not yet durably finished: running, waiting, or being written.
    ids: HashSet<String>,
    finishing: HashMap<EntryId, Finishing>,
    breaker: Breaker,
    stats: Stats,
    phase: Phase,
    seq: u64,
    /// Alternates between due retries and new tasks, so neither starves.
    prefer_retry: bool,
    next_heartbeat: Instant,
    next_watchdog: Option<Instant>,
    next_rescan: Option<Instant>,
    next_commit: Option<Instant>,
    /// The state the last heartbeat staged told.
    heartbeat_status: Option<WorkerState>,
    reap_due: bool,
    /// The turn stopped claiming early: poll without waiting.
    more_work: bool,
    /// Non-task names already reported.
    warned: HashSet<EntryId>,
    last_error: Option<String>,
    /// When each failing I/O operation's error was last logged (for ERROR_REPEAT).
    logged_errors: HashMap<String, Instant>,
    /// Outcomes could not be made durable: no new task starts until they are.
    writes_failing: bool,
    /// A claim failed for a reason of the queue, not of the task: none is tried before then.
    claims_paused_until: Option<Instant>,
    /// The filesystem of the queue, when inotify misses writes to it (see AUTO_RESCAN).
    remote: Option<&'static str>,
    scratch: Vec<u8>,
    metrics: WorkerMetrics,
    endpoint: Option<crate::http::Endpoint>,
    /// Failed attempts whose saved state is not durable yet, by claim key, oldest first.
    retrying: HashMap<EntryId, VecDeque<Recorded>>,
    /// When a heartbeat was last written durably.
    heartbeat_written: Instant,
    pipe: Option<pipe::PipeIntake>,
    /// A usage/rate limit or the spend cap holds every start.
    paused: Option<pause::Pause>,
    ledger: pause::Ledger,
    /// An outage of the agent's service holds the queue (announced once, at its start).
    outage: Option<outage::Outage>,
    /// Task files held back because they may still be being written.
    settling: settling::Settling,
}

impl Daemon {
    /// Sets up the loop around an opened spool; nothing is read or run yet.
    pub fn new(cfg: Config, layers: Layers, log: Logger, spool: Box<dyn Spool>) -> Result<Daemon, Fatal> {
        let poll = Poll::new().map_err(|e| Fatal::Other(format!("cannot create the event loop: {e}")))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
            .map_err(|e| Fatal::Other(format!("cannot install signal handlers: {e}")))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Fatal::Other(format!("cannot watch signals: {e}")))?;
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
        Ok(Daemon {
            layers,
            log,
            spool,
            poll,
            signals,
            notifier: Notifier::from_env(),
            hostname,
            started_at: SystemTime::now(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            slots: Vec::new(),
            active: 0,
            waiting: BTreeMap::new(),
            ids: HashSet::new(),
            finishing: HashMap::new(),
            breaker: Breaker::new(cfg.tuning.breaker_timeout, cfg.tuning.breaker_max_timeout),
            stats: Stats::default(),
            phase: Phase::Running,
            seq: 0,
            prefer_retry: false,
            next_heartbeat: now,
            next_watchdog: None,
            next_rescan: rescan_every(&cfg, remote).map(|d| now + d),
            next_commit: None,
            heartbeat_status: None,
            reap_due: false,
            more_work: false,
            warned: HashSet::new(),
            last_error: None,
            logged_errors: HashMap::new(),
            writes_failing: false,
            claims_paused_until: None,
            remote,
            scratch: vec![0; 64 * 1024],
            metrics,
            endpoint,
            retrying: HashMap::new(),
            heartbeat_written: now,
            pipe: None,
            paused: None,
            ledger: pause::Ledger::default(),
            outage: None,
            settling: settling::Settling::default(),
            cfg,
        })
    }

    /// Runs until a shutdown has drained. Returns `Ok` for a clean stop.
    pub fn run(mut self) -> Result<(), Fatal> {
        self.preflight()?;
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
        let r = self.notifier.ready_as(self.state().as_str(), &status);
        self.report_notify(r);
        self.next_watchdog = self.notifier.watchdog_interval().map(|d| Instant::now() + d);
        self.log.info(
            "ready",
            &[
                ("QUEUE_SIZE", &self.queued()),
                ("MAX_CONCURRENT", &self.cfg.tuning.max_concurrent),
                ("ROOT", &self.cfg.paths.root.display()),
                ("METRICS", &self.metrics_addresses().join(" ")),
            ],
        );
        let mut events = Events::with_capacity(256);
        loop {
            let timeout = self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Fatal::Other(format!("event loop failed: {e}")));
            }
            for event in events.iter() {
                self.dispatch(event.token());
            }
            self.turn();
            if self.drained() {
                break;
            }
        }
        self.stopped();
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
        self.more_work = false;
        self.schedule();
        self.flush();
        self.ping_watchdog(now);
    }

    fn dispatch(&mut self, token: Token) {
        match token {
            SIGNALS => self.on_signals(),
            SPOOL => self.on_intake(),
            t if self.owns_http(t) => self.on_http(t),
            PIPE => self.on_pipe(),
            // Written ops have outcomes: the turn's flush collects them.
            WRITES => {}
            Token(t) if t >= CHILD_BASE => {
                let (slot, pipe) = ((t - CHILD_BASE) / 3, (t - CHILD_BASE) % 3);
                let registry = self.poll.registry();
                if let (Some(Some(run)), Some(pipe)) = (self.slots.get_mut(slot), Pipe::from_index(pipe)) {
                    run.child.on_ready(pipe, registry, &mut self.scratch);
                }
            }
            _ => {}
        }
    }

    fn on_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGCHLD => self.reap_due = true,
                SIGHUP => self.reload(),
                SIGTERM | SIGINT => self.shutdown(),
                _ => {}
            }
        }
    }

    /// The earliest time something must happen; `None`: only an event can wake us.
    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.more_work {
            return Some(Instant::now());
        }
        for run in self.slots.iter().flatten() {
            at(run.stop.next());
        }
        if self.can_start() {
            at(self.waiting.keys().next().map(|k| k.0));
        }
        at(self.breaker.deadline());
        at(self.paused.map(|p| p.until));
        at(Some(self.next_heartbeat));
        at(self.next_watchdog);
        at(self.next_rescan);
        at(self.settling.next());
        at(self.next_commit);
        at(self.http_deadline());
        at(self.claims_paused_until);
        if let Phase::Draining { deadline, abandoned: false } = self.phase {
            at(Some(deadline));
        }
        next
    }

    /// Whether a running agent's deadline (or its SIGKILL after the grace), or the end of the
    /// shutdown's grace, has come.
    fn deadline_due(&self, now: Instant) -> bool {
        let drained = matches!(self.phase, Phase::Draining { deadline, abandoned: false } if now >= deadline);
        drained || self.slots.iter().flatten().any(|r| r.stop.due(now))
    }

    fn fire_timers(&mut self, now: Instant) {
        self.enforce_deadlines(now);
        self.expire_http(now);
        if let Some(t) = self.breaker.tick(now) {
            self.breaker_changed(t);
        }
        self.end_pause(now);
        if now >= self.next_heartbeat {
            self.stage_heartbeat();
        }
        if self.next_rescan.is_some_and(|t| now >= t) {
            self.next_rescan = None;
            if let Err(e) = self.rescan() {
                self.io_error("cannot list the queue", &e);
                self.next_rescan = Some(now + RETRY_IO);
            }
        }
        self.recheck_unfinished(now);
        if self.next_commit.is_some_and(|t| now >= t) {
            self.next_commit = None;
        }
        if self.claims_paused_until.is_some_and(|t| now >= t) {
            self.claims_paused_until = None;
        }
        if let Phase::Draining { deadline, abandoned: false } = self.phase {
            if now >= deadline {
                self.abandon_running(now);
            }
        }
    }

    fn ping_watchdog(&mut self, now: Instant) {
        let (Some(due), Some(every)) = (self.next_watchdog, self.notifier.watchdog_interval()) else {
            return;
        };
        if now >= due {
            let r = self.notifier.watchdog();
            self.report_notify(r);
            self.next_watchdog = Some(now + every);
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
        let due = self.logged_errors.get(&msg).is_none_or(|t| now.duration_since(*t) >= ERROR_REPEAT);
        if due {
            self.logged_errors.insert(msg.clone(), now);
            self.log.error(&msg, fields);
        }
        self.last_error = Some(msg);
    }

    /// Every write of a commit succeeded and nothing waits: the errors are over.
    fn io_recovered(&mut self) {
        if self.claims_paused_until.is_some() {
            return;
        }
        if let Some(was) = self.last_error.take() {
            self.logged_errors.clear();
            self.log.info("writes succeed again; processing resumes", &[("ERROR", &was)]);
            self.stage_heartbeat();
        }
    }

    /// The safety rescan interval in force: RESCAN_INTERVAL, or when it is unset,
    /// AUTO_RESCAN on a network filesystem.
    fn rescan_every(&self) -> Option<Duration> {
        rescan_every(&self.cfg, self.remote)
    }

    /// Says at start-up why the queue is rescanned on a timer, or why it should be.
    fn announce_rescan(&mut self) {
        let Some(fs) = self.remote else { return };
        match self.rescan_every() {
            Some(every) => self.log.info(
                "the queue is on a filesystem where inotify misses writes made elsewhere; rescanning it on a timer",
                &[("FILESYSTEM", &fs), ("RESCAN_INTERVAL_S", &every.as_secs_f64())],
            ),
            None => self.log.warn(
                "the queue is on a filesystem where inotify misses writes made elsewhere, and RESCAN_INTERVAL=0: such tasks wait for the next local change",
                &[("FILESYSTEM", &fs)],
            ),
        }
    }

    fn can_start(&self) -> bool {
        self.phase == Phase::Running
            && self.active < self.cfg.tuning.max_concurrent
            && self.breaker.may_start()
            && self.paused.is_none()
            && !self.writes_failing
            && self.claims_paused_until.is_none()
    }

    fn drained(&self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Draining { abandoned, .. } => {
                self.active == 0 && self.waiting.is_empty() && (!self.spool.has_pending() || abandoned)
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
