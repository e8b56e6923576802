//! The I/O thread: the daemon's loop never waits on the network. Each loop turn hands the
//! thread one [`Batch`] of calls; the thread sends them pipelined (one round trip, and with
//! `appendfsync always` one AOF sync for the whole batch: the group commit of the file spool's
//! writer thread), optionally waits for replicas, and wakes the loop (its [`Wake`]: a mio
//! `Waker`, or anything that makes the loop turn) with the outcomes. It connects, and reconnects with a capped exponential backoff, and
//! reports every change of the connection's state.
//!
//! It decides nothing: what to retry, hold or log stays with the loop, which gets each batch
//! back with one outcome per call.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::Engine;
use super::error::EngineError;
use super::ops::Call;
use super::reply::Reply;

/// Makes a connection ready for use (connect, load scripts, create groups, check settings).
pub type Connector = Box<dyn FnMut() -> Result<Engine, EngineError> + Send>;

/// Tells the loop that an event waits (a mio `Waker`'s `wake`): called after every event.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// A [`Wake`] that rings a mio `Waker`.
pub fn waker(w: mio::Waker) -> Wake {
    Arc::new(move || {
        let _ = w.wake();
    })
}

/// The calls of one loop turn.
#[derive(Debug)]
pub struct Batch {
    /// The loop's own number for it, given back with the outcomes.
    pub id: u64,
    pub calls: Vec<Call>,
    /// Wait for this many replicas (at most this long) after the calls: enqueues and
    /// results that must survive a failover. `aof`: WAITAOF rather than WAIT.
    pub replicas: Option<Replicas>,
}

#[derive(Clone, Copy, Debug)]
pub struct Replicas {
    pub count: u32,
    pub timeout: Duration,
    pub aof: bool,
}

/// The connection's state, as the loop shows it (STATUS, READY).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Up,
    /// Down since the last attempt failed; the next attempt is in `retry_in`.
    Down {
        error: String,
        retry_in: Duration,
    },
}

/// What the thread reports.
#[derive(Debug)]
pub enum Event {
    Done {
        batch: u64,
        /// One per call, in order.
        replies: Vec<Result<Reply, EngineError>>,
        /// Replicas that confirmed, when asked.
        replicated: Option<Result<u32, EngineError>>,
        /// The round trip; a slow one closes the reclaim gate (lease.rs).
        took: Duration,
    },
    Link(Link),
}

/// Capped exponential backoff with jitter for reconnects.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { next: min, min, max }
    }

    /// The wait before the next attempt: doubles up to `max`, each with up to 25 % less (so
    /// a fleet does not reconnect in step).
    pub fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d.mul_f64(1.0 - fastrand::f64() * 0.25)
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The loop's end of the I/O thread.
pub struct RedisIo {
    jobs: Option<Sender<Batch>>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

struct Worker {
    connect: Connector,
    engine: Option<Engine>,
    backoff: Backoff,
    next_try: Instant,
    last_error: String,
    events: Sender<Event>,
    wake: Wake,
}

impl Worker {
    fn emit(&self, e: Event) -> bool {
        let ok = self.events.send(e).is_ok();
        (self.wake)();
        ok
    }

    fn try_connect(&mut self) {
        match (self.connect)() {
            Ok(e) => {
                self.engine = Some(e);
                self.backoff.reset();
                self.emit(Event::Link(Link::Up));
            }
            Err(e) => self.down(e.to_string()),
        }
    }

    fn down(&mut self, error: String) {
        self.engine = None;
        let retry_in = self.backoff.step();
        self.next_try = Instant::now() + retry_in;
        self.last_error = error.clone();
        self.emit(Event::Link(Link::Down { error, retry_in }));
    }

    fn run_batch(&mut self, b: Batch) -> bool {
        let started = Instant::now();
        let Some(engine) = self.engine.as_mut() else {
            let e = EngineError::Connection(format!("not connected: {}", self.last_error));
            let replies = b.calls.iter().map(|_| Err(e.clone())).collect();
            return self.emit(Event::Done { batch: b.id, replies, replicated: None, took: Duration::ZERO });
        };
        let (replies, mut broken) = match engine.run_batch(&b.calls) {
            Ok(r) => {
                let broken = r.iter().find_map(|r| r.as_ref().err().filter(|e| e.needs_reconnect()).cloned());
                (r, broken)
            }
            Err(e) => (b.calls.iter().map(|_| Err(e.clone())).collect(), Some(e)),
        };
        let replicated = match (b.replicas, &broken) {
            (Some(r), None) => {
                let got = engine.wait_replicas(r.count, r.timeout, r.aof);
                if let Err(e) = &got {
                    broken = broken.or(Some(e.clone()).filter(|e| e.needs_reconnect()));
                }
                Some(got)
            }
            _ => None,
        };
        let took = started.elapsed();
        if let Some(e) = broken {
            self.down(e.to_string());
        }
        self.emit(Event::Done { batch: b.id, replies, replicated, took })
    }

    fn run(mut self, jobs: Receiver<Batch>) {
        // The daemon's signals go to its loop: one delivered here would interrupt a `recv`
        // with a read timeout (never restarted), fail the batch and break the link.
        crate::sys::syncs::block_signals();
        self.try_connect();
        loop {
            let job = if self.engine.is_some() {
                jobs.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                jobs.recv_timeout(self.next_try.saturating_duration_since(Instant::now()))
            };
            match job {
                Ok(b) => {
                    if !self.run_batch(b) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.engine.is_none() && Instant::now() >= self.next_try {
                self.try_connect();
            }
        }
    }
}

impl RedisIo {
    /// Starts the thread; it connects at once through `connect`, then at every failure after
    /// a backoff between `min` and `max`. `wake` is called after every event.
    pub fn spawn(connect: Connector, wake: Wake, min: Duration, max: Duration) -> std::io::Result<RedisIo> {
        let (jobs, jobs_rx) = mpsc::channel::<Batch>();
        let (events_tx, events) = mpsc::channel::<Event>();
        let worker = Worker {
            connect,
            engine: None,
            backoff: Backoff::new(min, max),
            next_try: Instant::now(),
            last_error: "not connected yet".into(),
            events: events_tx,
            wake,
        };
        let thread =
            std::thread::Builder::new().name("spool-redis".into()).spawn(move || worker.run(jobs_rx))?;
        Ok(RedisIo { jobs: Some(jobs), events, thread: Some(thread) })
    }

    /// Hands over one turn's batch. Never blocks.
    pub fn send(&self, batch: Batch) -> Result<(), Batch> {
        match &self.jobs {
            Some(j) => j.send(batch).map_err(|e| e.0),
            None => Err(batch),
        }
    }

    /// Every event reported since the last call. Never blocks.
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
    }
}

impl RedisIo {
    /// The next event, waiting at most `timeout` for it (a tool, or the daemon before its loop
    /// runs: never the loop itself).
    pub fn wait_event(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for RedisIo {
    /// Ends the thread after the batch it is on.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::thread::JoinHandleExt;

    extern "C" fn ignore(_: libc::c_int) {}

    /// A process-directed signal (SIGCHLD at every agent's exit) may be delivered to any
    /// thread that does not block it; one that lands in the I/O thread's `recv` (a socket with
    /// a read timeout is never restarted) must not fail the batch and break the link.
    #[test]
    fn a_signal_does_not_interrupt_a_batch() {
        let Some(server) = crate::engine::redis::testing::Server::start(&[]) else { return };
        let target = server.target();
        let connect: Connector = Box::new(move || Engine::connect(&target, None, Duration::from_secs(10)));
        let io = RedisIo::spawn(connect, Arc::new(|| {}), Duration::from_millis(10), Duration::from_secs(1))
            .expect("spawn");
        // SAFETY: a handler that does nothing, for a signal nothing else in the tests uses.
        unsafe { libc::signal(libc::SIGUSR2, ignore as *const () as libc::sighandler_t) };
        assert!(matches!(io.wait_event(Duration::from_secs(20)), Some(Event::Link(Link::Up))));
        // Waits in the engine for a second.
        let call = Call::command("BLPOP", vec!["nothing".into()]).arg("1");
        io.send(Batch { id: 1, calls: vec![call], replicas: None }).expect("send");
        let thread = io.thread.as_ref().expect("thread").as_pthread_t();
        let deadline = Instant::now() + Duration::from_secs(20);
        let event = loop {
            // SAFETY: the thread runs until `io` is dropped.
            unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
            if let Some(e) = io.wait_event(Duration::from_millis(5)) {
                break e;
            }
            assert!(Instant::now() < deadline, "the batch did not come back");
        };
        let Event::Done { replies, .. } = event else { panic!("{event:?}") };
        assert!(replies[0].is_ok(), "{:?}", replies[0]);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps: Vec<Duration> = (0..6).map(|_| b.step()).collect();
        for (s, nominal) in steps.iter().zip([100, 200, 400, 800, 800, 800]) {
            let n = Duration::from_millis(nominal);
            assert!(*s <= n && *s >= n.mul_f64(0.75), "{s:?} vs {n:?}");
        }
        b.reset();
        assert!(b.step() <= Duration::from_millis(100));
    }
}
