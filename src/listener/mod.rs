//! orchestrator-listener: one thread, one `mio::Poll` over the inotify fd (result folders,
//! heartbeats, and the folders where new workers appear), the signal pipe, the notify
//! commands' pipes and the metrics socket; every timer (stale heartbeats, seals, time-outs,
//! the watchdog) is the poll timeout.
//!
//! A loop turn: wait → dispatch → take new results (a bounded number a turn) → judge
//! health → seal quiet folders → write the turn's events, then the state → run notify
//! commands → tell systemd. Nothing here sleeps or blocks on a child.
//!
//! Its state (what was counted and announced) is [`state`]; the events are [`events`]. The
//! spool (which results are new, the heartbeats, where events go, and committing what was
//! taken with the state) is its backend, [`crate::spool::listener::ListenerSpool`].

mod announce;
mod batches;
mod command;
mod counts;
mod events;
mod exposition;
mod freshness;
mod health;
mod http;
mod intake;
mod lifecycle;
mod self_metrics;
mod state;
#[cfg(test)]
mod tests;
mod watching;

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::config::listener::ListenerConfig;
use crate::config::Layers;
use crate::error::Fatal;
use crate::log::Logger;
use crate::runner::Pipe;
use crate::spool::fs::listener::FsListener;
use crate::spool::listener::ListenerSpool;
use crate::spool::redis::listener::RedisListener;
use crate::sys::sd_notify::Notifier;
use command::Commands;
use events::Event;
use health::{HeartbeatReading, Verdict};
use state::{Loaded, State};

const SIGNALS: Token = Token(0);
const WATCH: Token = Token(1);
/// Notify commands' pipes: `CHILD_BASE + slot * 3 + pipe`.
const CHILD_BASE: usize = 16;
/// Notify commands at once, at most, whatever ORCHESTRATOR_NOTIFY_CONCURRENCY says later.
const MAX_COMMANDS: usize = 64;
/// How long to wait before trying again a write that failed.
const RETRY_IO: Duration = Duration::from_secs(1);
/// The state is written at most this often when no event asks for it at once.
const STATE_EVERY: Duration = Duration::from_secs(1);
/// Workers followed at most when they are discovered (WORKERS unset).
const MAX_WORKERS: usize = 10_000;
/// An operation that keeps failing is retried every [`RETRY_IO`]; its error is logged again
/// after this long at most.
const ERROR_REPEAT: Duration = Duration::from_secs(60);

fn child_token(slot: usize, pipe: Pipe) -> Token {
    Token(CHILD_BASE + slot * 3 + pipe as usize)
}

/// What the listener knows of a worker besides its saved state.
#[derive(Debug, Default)]
struct Live {
    /// Named in WORKERS: a missing heartbeat is a problem from the start.
    named: bool,
    /// Each host's heartbeat, the freshest first, as the spool gives them (one, of the empty
    /// host name, on a spool of one host); empty: it has none. The worker's own health is
    /// judged on them ([`Live::judged`]).
    hosts: Vec<HostBeat>,
    verdict: Option<Verdict>,
    /// When a healthy worker's heartbeat turns stale.
    stale_at: Option<Instant>,
}

/// One host's heartbeat of a worker.
#[derive(Debug)]
struct HostBeat {
    host: String,
    reading: HeartbeatReading,
    /// How old it is (on the monotonic clock).
    fresh: Option<freshness::Freshness>,
}

static MISSING: HeartbeatReading = HeartbeatReading::Missing;

/// One host's heartbeat (`None`: none) judged as the worker's.
fn judge_host(
    host: Option<&HostBeat>,
    expected: bool,
    now: f64,
    mono: Instant,
    stale_after: Option<Duration>,
) -> Judged<'_> {
    let reading = host.map_or(&MISSING, |h| &h.reading);
    let age = host.and_then(|h| h.fresh).map_or(0.0, |f| f.age(mono));
    Judged { verdict: health::judge(reading, expected, now, age, stale_after), reading, age }
}

/// The verdict on a worker, and the heartbeat it was judged on, `age` seconds old.
struct Judged<'a> {
    verdict: Verdict,
    reading: &'a HeartbeatReading,
    age: f64,
}

impl Live {
    /// Judges the worker at `now` (`mono` on the monotonic clock): on the freshest heartbeat
    /// of a host that is healthy, else on its freshest (see `health::judge`; `expected`: a
    /// missing one is a problem). A worker is healthy while any of its hosts is: one host
    /// stopped or dead among others that work is that host's (`watcher_worker_up{host}`),
    /// not an event about the worker.
    fn judged<'a>(
        &'a self,
        expected: bool,
        now: f64,
        mono: Instant,
        stale_after: Option<Duration>,
    ) -> Judged<'a> {
        let judge = |host: Option<&'a HostBeat>| judge_host(host, expected, now, mono, stale_after);
        let mut judged = self.hosts.iter().map(|h| judge(Some(h)));
        let freshest = judged.next().unwrap_or_else(|| judge(None));
        if freshest.verdict.problems.is_empty() {
            return freshest;
        }
        judged.find(|j| j.verdict.problems.is_empty()).unwrap_or(freshest)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// Stopping: running commands may finish until `deadline`.
    Stopping {
        deadline: Instant,
        killed: bool,
    },
}

pub struct Listener {
    cfg: ListenerConfig,
    layers: Layers,
    log: Logger,
    poll: Poll,
    signals: Signals,
    notifier: Notifier,
    spool: Box<dyn ListenerSpool>,
    state: State,
    workers: BTreeMap<String, Live>,
    /// Events made and not yet durable (a failed write keeps them here; intake waits).
    staged: Vec<Event>,
    /// The last write of events or state failed: retry at this time.
    retry_io_at: Option<Instant>,
    state_dirty: bool,
    /// When to write a dirty state that no event is waiting for.
    state_due: Option<Instant>,
    reap_due: bool,
    /// Results are left for the next turn: poll without waiting.
    more_work: bool,
    commands: Commands,
    endpoint: Option<crate::http::Endpoint>,
    own: self_metrics::Own,
    phase: Phase,
    next_watchdog: Option<Instant>,
    /// The backlog found at start-up was taken (logged once).
    caught_up: bool,
    started: Instant,
    /// When each error of a retried operation was last logged (see `retried_error`).
    logged_errors: BTreeMap<String, Instant>,
}

impl Listener {
    /// Opens the spool's folders, the state and the endpoint; nothing is scanned yet.
    pub fn new(cfg: ListenerConfig, layers: Layers, log: Logger) -> Result<Listener, Fatal> {
        let spool: Box<dyn ListenerSpool> = match &cfg.spool {
            None => Box::new(FsListener::open(&cfg.paths)?),
            Some(engine) => Box::new(RedisListener::open(engine, &cfg.paths, cfg.files)?),
        };
        Listener::with_spool(cfg, layers, log, spool)
    }

    /// The listener on `spool`: its state read, the loop and the endpoint set up.
    pub fn with_spool(
        cfg: ListenerConfig,
        layers: Layers,
        log: Logger,
        mut spool: Box<dyn ListenerSpool>,
    ) -> Result<Listener, Fatal> {
        let started = Instant::now();
        let state = match state::load(spool.load()?)? {
            Loaded::State(s) => *s,
            Loaded::Fresh => State::default(),
        };
        let poll = Poll::new().map_err(|e| Fatal::Other(format!("cannot create the event loop: {e}")))?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
            .map_err(|e| Fatal::Other(format!("cannot install signal handlers: {e}")))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| Fatal::Other(format!("cannot watch signals: {e}")))?;
        spool
            .register(poll.registry(), WATCH)
            .map_err(|e| Fatal::Other(format!("cannot watch the spool: {e}")))?;
        let own = self_metrics::Own::new(&state)
            .map_err(|e| Fatal::Other(format!("cannot set up the metrics: {e}")))?;
        let mut endpoint = http::open(&cfg, &layers.env, &log)?;
        if let Some(ep) = endpoint.as_mut() {
            ep.server
                .register(poll.registry())
                .map_err(|e| Fatal::Other(format!("cannot watch the metrics socket: {e}")))?;
        }
        Ok(Listener {
            cfg,
            layers,
            log,
            poll,
            signals,
            notifier: Notifier::from_env(),
            spool,
            state,
            workers: BTreeMap::new(),
            staged: Vec::new(),
            retry_io_at: None,
            state_dirty: false,
            state_due: None,
            reap_due: false,
            more_work: false,
            commands: Commands::new(MAX_COMMANDS, crate::runner::Containment::setup()),
            endpoint,
            own,
            phase: Phase::Running,
            next_watchdog: None,
            caught_up: false,
            started,
            logged_errors: BTreeMap::new(),
        })
    }

    /// Runs until stopped. `Ok` is a clean stop.
    pub fn run(mut self) -> Result<(), Fatal> {
        self.start_watching()?;
        self.spool.prepare();
        self.ready();
        // The backlog found and the health of every worker do not wait for a first event.
        self.turn();
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
            if self.finished() {
                break;
            }
        }
        self.stopped();
        Ok(())
    }

    fn dispatch(&mut self, token: Token) {
        match token {
            SIGNALS => self.on_signals(),
            WATCH => self.read_watch(),
            t if self.owns_http(t) => self.on_http(t),
            Token(t) if t >= CHILD_BASE => {
                let (slot, pipe) = ((t - CHILD_BASE) / 3, (t - CHILD_BASE) % 3);
                if let Some(pipe) = Pipe::from_index(pipe) {
                    self.commands.on_ready(slot, pipe, self.poll.registry());
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

    /// Everything after the events of a turn.
    fn turn(&mut self) {
        let now = Instant::now();
        self.expire_http(now);
        // Exits before time limits: a command that ended while the loop was not turning (the
        // listener stopped, a VM paused) is judged by its exit, not timed out.
        if self.commands.next_deadline().is_some_and(|d| now >= d) {
            for ended in self.commands.reap(self.poll.registry()) {
                self.command_ended(ended);
            }
        }
        self.commands.enforce(now, self.cfg.tuning.kill_grace);
        self.commands.tick(now);
        if self.retry_io_at.is_some_and(|t| now >= t) {
            self.retry_io_at = None;
        }
        // What the spool has to say (a rescan that came due, say) even with no event of it.
        self.read_watch();
        self.more_work = false;
        if self.phase == Phase::Running {
            self.take_results();
        }
        self.judge_health();
        self.spool.tick(now, self.staged.is_empty());
        // Results that arrived meanwhile (the spool may look while it seals) are for the next
        // turn, at once; none is taken while events wait to be written.
        self.more_work |=
            self.phase == Phase::Running && self.staged.is_empty() && !self.spool.backlog().is_empty();
        self.commit();
        self.run_commands();
        self.log_notes();
        self.report(now);
    }

    /// Logs the error of an operation retried every [`RETRY_IO`]: when it is new, then at most
    /// every [`ERROR_REPEAT`] while it lasts, not every second.
    fn retried_error(&mut self, message: &str, fields: &[crate::log::Field]) {
        let mut key = message.to_string();
        for (k, v) in fields {
            key.push_str(&format!(" {k}={v}"));
        }
        let now = Instant::now();
        if self.logged_errors.get(&key).is_none_or(|t| now.duration_since(*t) >= ERROR_REPEAT) {
            self.logged_errors.insert(key, now);
            self.log.error(message, fields);
        }
    }

    /// The retried operations succeed again: said once, and their errors logged anew.
    fn errors_over(&mut self) {
        if !self.logged_errors.is_empty() {
            self.logged_errors.clear();
            self.log.info("events and state are written again", &[]);
        }
    }

    /// The earliest time something must happen; `None`: only an event can wake us.
    fn next_deadline(&self) -> Option<Instant> {
        if self.more_work {
            return Some(Instant::now());
        }
        // A millisecond past the limit, so that the heartbeat is stale when judged.
        let stale = self.workers.values().filter_map(|l| l.stale_at).map(|at| at + Duration::from_millis(1));
        // A seal waits for blocked events.
        let spool = self.spool.next_deadline(self.staged.is_empty());
        let stopping = match self.phase {
            Phase::Stopping { deadline, killed: false } => Some(deadline),
            _ => None,
        };
        stale
            .chain(spool)
            .chain(self.retry_io_at)
            .chain(self.state_due.filter(|_| self.staged.is_empty() && self.retry_io_at.is_none()))
            .chain(self.commands.next_deadline())
            .chain(self.next_watchdog)
            .chain(self.http_deadline())
            .chain(stopping)
            .min()
    }
}

/// The names of every metric family the listener serves (its manual page is tested against
/// them).
pub fn metric_families() -> Vec<String> {
    let mut names: Vec<String> = exposition::family_names().map(str::to_string).collect();
    if let Ok(own) = self_metrics::Own::new(&State::default()) {
        names.extend(own.gather().iter().map(|f| f.name().to_string()));
    }
    names
}

/// `orchestrator-listener …`: loads the configuration, runs the listener until it is
/// stopped. `Ok` is exit status 0.
pub fn run(args: &crate::cli::ListenerArgs) -> Result<(), Fatal> {
    let layers = args.layers(crate::cli::environment());
    let cfg = ListenerConfig::load(&layers)?;
    if args.check_config {
        print!("{}", cfg.report());
        return Ok(());
    }
    let sink = crate::log::Sink::detect(cfg.log_target, layers.env.get("JOURNAL_STREAM").map(String::as_str));
    let log = Logger::with_identity(cfg.tuning.log_level, cfg.log_format, sink, lifecycle::IDENTIFIER, "");
    Listener::new(cfg, layers, log)?.run()
}
