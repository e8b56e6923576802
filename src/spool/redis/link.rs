//! A backend's end of the engine's I/O thread ([`RedisIo`]): the batches sent and their
//! outcomes, the link's state as the thread reports it, the engine's verdict from the last
//! connect, and the bell that wakes the loop.
//!
//! The loop's own calls never wait here ([`Link::poll`]); only what runs before the loop
//! turns, or a tool, waits for a batch ([`Link::round_trip`]).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mio::{Registry, Token, Waker};

use crate::engine::redis::check::Verdict;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::io::{self as engine_io, Batch, Connector, Event, RedisIo, Replicas};
use crate::engine::redis::ops::Call;
use crate::engine::redis::reply::Reply;

/// Reconnects are tried after this at first, doubling up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Rings the loop's `Waker` once the loop registered one; before that, nobody listens.
#[derive(Clone, Default)]
pub(crate) struct Bell(Arc<OnceLock<Waker>>);

impl Bell {
    /// Makes the bell ring `token` on `registry` (once; later calls keep the first).
    pub(crate) fn hang(&self, registry: &Registry, token: Token) -> io::Result<()> {
        if self.0.get().is_none() {
            let _ = self.0.set(Waker::new(registry, token)?);
        }
        Ok(())
    }

    pub(crate) fn ring(&self) {
        if let Some(w) = self.0.get() {
            let _ = w.wake();
        }
    }

    fn wake(&self) -> engine_io::Wake {
        let bell = self.clone();
        Arc::new(move || bell.ring())
    }
}

/// Where the connection is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Not connected yet since the start.
    Connecting,
    Up,
    /// The last attempt failed with this.
    Down(String),
}

/// A batch that came back.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) id: u64,
    pub(crate) replies: Vec<Result<Reply, EngineError>>,
    /// Replicas that confirmed, when the batch asked for them.
    pub(crate) replicated: Option<Result<u32, EngineError>>,
    pub(crate) took: Duration,
    /// When it came back.
    pub(crate) at: Instant,
}

pub(crate) struct Link {
    io: RedisIo,
    bell: Bell,
    next_id: u64,
    state: State,
    /// Connections made so far (a reconnect makes it grow).
    pub(crate) connects: u64,
    finished: VecDeque<Finished>,
    verdict: Arc<Mutex<Option<Verdict>>>,
}

impl Link {
    /// Starts the I/O thread, which connects through `connect` at once. `verdict` is where
    /// the connector keeps the engine's verdict.
    pub(crate) fn spawn(connect: Connector, verdict: Arc<Mutex<Option<Verdict>>>) -> io::Result<Link> {
        let bell = Bell::default();
        let io = RedisIo::spawn(connect, bell.wake(), RECONNECT_MIN, RECONNECT_MAX)?;
        Ok(Link {
            io,
            bell,
            next_id: 0,
            state: State::Connecting,
            connects: 0,
            finished: VecDeque::new(),
            verdict,
        })
    }

    pub(crate) fn bell(&self) -> &Bell {
        &self.bell
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// The engine's verdict at the last connect (or the last attempt that read one).
    pub(crate) fn verdict(&self) -> Option<Verdict> {
        self.verdict.lock().ok().and_then(|v| v.clone())
    }

    /// Hands a batch to the thread; returns its id. Never blocks.
    pub(crate) fn send(&mut self, calls: Vec<Call>, replicas: Option<Replicas>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        if let Err(b) = self.io.send(Batch { id, calls, replicas }) {
            // The thread is gone (it never ends on its own): every call fails.
            let e = EngineError::Connection("the engine's I/O thread has stopped".into());
            let replies = b.calls.iter().map(|_| Err(e.clone())).collect();
            let at = Instant::now();
            self.finished.push_back(Finished { id, replies, replicated: None, took: Duration::ZERO, at });
        }
        id
    }

    fn absorb(&mut self, e: Event) {
        match e {
            Event::Done { batch, replies, replicated, took } => {
                let at = Instant::now();
                self.finished.push_back(Finished { id: batch, replies, replicated, took, at });
            }
            Event::Link(engine_io::Link::Up) => {
                self.state = State::Up;
                self.connects += 1;
            }
            Event::Link(engine_io::Link::Down { error, .. }) => self.state = State::Down(error),
        }
    }

    /// The batches that came back since the last call, in order. Never blocks.
    pub(crate) fn poll(&mut self) -> Vec<Finished> {
        for e in self.io.events() {
            self.absorb(e);
        }
        self.finished.drain(..).collect()
    }

    /// Waits until batch `id` is back, at most until `deadline`; what else came back is kept
    /// for [`Link::poll`].
    pub(crate) fn wait_for(&mut self, id: u64, deadline: Instant) -> Option<Finished> {
        loop {
            if let Some(i) = self.finished.iter().position(|f| f.id == id) {
                return self.finished.remove(i);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let e = self.io.wait_event(left)?;
            self.absorb(e);
        }
    }

    /// Waits until the link is up or has failed once since the start, at most until
    /// `deadline`.
    #[cfg(test)]
    pub(crate) fn wait_state(&mut self, deadline: Instant) -> &State {
        while self.state == State::Connecting {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            match self.io.wait_event(left) {
                Some(e) => self.absorb(e),
                None => break,
            }
        }
        &self.state
    }

    /// Sends `calls` and waits for their replies, at most `timeout`.
    pub(crate) fn round_trip(
        &mut self,
        calls: Vec<Call>,
        timeout: Duration,
    ) -> Result<Vec<Result<Reply, EngineError>>, EngineError> {
        let id = self.send(calls, None);
        match self.wait_for(id, Instant::now() + timeout) {
            Some(f) => Ok(f.replies),
            None => Err(EngineError::Connection(format!("no reply within {} s", timeout.as_secs_f64()))),
        }
    }
}
