//! The wake-up for new entries of streams (a worker's tasks; the fleet's results and
//! heartbeats for the listener): a thread with a connection of its own, blocked in one
//! `XREAD BLOCK` on all of them from the newest entry it has seen of each. `XREAD` claims
//! nothing (a blocked `XREADGROUP` could not be taken back: docs/redis.md, "Pickup"), so every
//! delivery still goes through the scripts; this thread only says which streams moved, and
//! rings the loop's bell.
//!
//! Each stream starts from its consumer group's last-delivered-id (what was added and not
//! delivered before it connected is news at once), or from its newest entry; at every
//! (re)connect each stream is said to have moved, so nothing written meanwhile is missed.
//!
//! A worker's loop may also leave an [`Armed`] claim here: its free slots, while it knows of no
//! waiting entry. When the first stream moves, this thread runs that `claim` script itself, on
//! its own connection, and hands the outcome to the loop with the bell: the pickup then costs
//! one round trip after the wake-up and one hop to the loop, instead of a hop to the loop, a
//! hop to the I/O thread, its round trip and a hop back (bench/BENCHMARKS.md, issue 16). It is
//! the same script with the same checks, for the slots the loop reserved, never more; the loop
//! takes the slots back whenever they are no longer free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redis::Value;

use super::link::Bell;
use super::values;
use crate::engine::redis::client::Engine;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::ops::Queue;
use crate::engine::redis::reply::Reply;
use crate::engine::redis::settings::Settings;

/// How long one `XREAD` blocks; a stop is noticed after it at most.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read at most per stream and `XREAD` (only the newest id is kept).
const COUNT: usize = 1000;
/// The wait before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Where the wake-up starts reading a stream.
#[derive(Clone, Copy, Debug)]
pub(crate) enum From {
    /// After this consumer group's last-delivered-id.
    Group(&'static str),
    /// After its newest entry.
    Newest,
}

/// A claim the loop leaves with the wake-up thread, made when the first stream moves.
#[derive(Debug, Default)]
pub(crate) struct Armed {
    /// The free slots the loop reserved for it; 0: none (taken back, or being claimed).
    pub(crate) slots: usize,
    /// The claims made, for the loop: the slots each was for, its outcome, its round trip.
    pub(crate) made: Vec<(usize, Result<Reply, EngineError>, Duration)>,
}

/// The armed claim shared by the loop and the wake-up thread.
pub(crate) type Arm = Arc<Mutex<Armed>>;

/// The loop's end: which streams moved since the last look.
pub(crate) struct Wakeup {
    moved: Vec<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
}

impl Wakeup {
    /// Starts the thread on `streams`; with `arm`, it makes the claim armed there for
    /// `queue` when the first stream moves.
    pub(crate) fn spawn(
        settings: &Settings,
        streams: Vec<(String, From)>,
        bell: Bell,
        arm: Option<(Arm, Queue)>,
    ) -> std::io::Result<Wakeup> {
        let moved: Vec<Arc<AtomicBool>> = streams.iter().map(|_| Arc::new(AtomicBool::new(false))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let watch = Watch {
            settings: settings.clone(),
            streams,
            bell,
            moved: moved.clone(),
            stop: stop.clone(),
            arm,
        };
        thread::Builder::new().name("spool-wakeup".into()).spawn(move || watch.run())?;
        Ok(Wakeup { moved, stop })
    }

    /// Whether stream `i` (in the order given) moved since the last call.
    pub(crate) fn take(&self, i: usize) -> bool {
        self.moved.get(i).is_some_and(|m| m.swap(false, Ordering::AcqRel))
    }
}

impl Drop for Wakeup {
    /// The thread ends after its current `XREAD` (not joined: the loop must not wait for it).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct Watch {
    settings: Settings,
    streams: Vec<(String, From)>,
    bell: Bell,
    moved: Vec<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
    arm: Option<(Arm, Queue)>,
}

fn io(what: &'static str, e: impl ToString) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, what, e.to_string()))
}

impl Watch {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(self) {
        // As on the I/O thread (io.rs): a signal would end the blocked `XREAD` with EINTR.
        crate::sys::syncs::block_signals();
        while !self.stopped() {
            // Errors end a watch; the next starts again from the groups' cursors.
            let _ = self.watch();
            if !self.stopped() {
                thread::sleep(RETRY);
            }
        }
    }

    fn ring(&self, i: usize) {
        if let Some(m) = self.moved.get(i) {
            m.store(true, Ordering::Release);
        }
    }

    fn watch(&self) -> Result<(), redis::RedisError> {
        let s = &self.settings;
        let mut engine =
            Engine::connect(&s.target, s.password.as_deref(), s.timeout).map_err(|e| io("connect", e))?;
        engine.set_read_timeout(Some(BLOCK + s.timeout)).map_err(|e| io("timeout", e))?;
        let mut cursors = Vec::with_capacity(self.streams.len());
        for (stream, from) in &self.streams {
            cursors.push(start(engine.connection(), stream, *from)?);
        }
        // What was written before this connection is news too.
        (0..self.streams.len()).for_each(|i| self.ring(i));
        self.bell.ring();
        while !self.stopped() {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(COUNT).arg("BLOCK").arg(BLOCK.as_millis() as u64).arg("STREAMS");
            cmd.arg(self.streams.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>()).arg(&cursors);
            let reply: Value = cmd.query(engine.connection())?;
            let mut any = false;
            for (name, newest) in newest_ids(&reply) {
                if let Some(i) = self.streams.iter().position(|(s, _)| *s == name) {
                    cursors[i] = newest;
                    // The armed claim's outcome says it for the first stream.
                    if i != 0 || !self.claim(&mut engine)? {
                        self.ring(i);
                    }
                    any = true;
                }
            }
            if any {
                self.bell.ring();
            }
        }
        Ok(())
    }

    /// Makes the armed claim, if one is armed: `true` when made. A connection's error is
    /// handed to the loop (the claim may have been made: it reads its own pending list) and
    /// ends the watch.
    fn claim(&self, engine: &mut Engine) -> Result<bool, redis::RedisError> {
        let Some((arm, queue)) = &self.arm else { return Ok(false) };
        let slots = match arm.lock() {
            Ok(mut a) => std::mem::take(&mut a.slots),
            Err(_) => 0,
        };
        if slots == 0 {
            return Ok(false);
        }
        let started = Instant::now();
        let outcome = engine.run(&queue.claim(slots));
        let broken = outcome.as_ref().err().filter(|e| e.needs_reconnect()).map(ToString::to_string);
        if let Ok(mut a) = arm.lock() {
            a.made.push((slots, outcome, started.elapsed()));
        }
        match broken {
            Some(e) => {
                self.bell.ring();
                Err(io("claim", e))
            }
            None => Ok(true),
        }
    }
}

/// Where reading `stream` starts.
fn start(con: &mut redis::Connection, stream: &str, from: From) -> Result<String, redis::RedisError> {
    match from {
        From::Group(group) => {
            let groups: Value = match redis::cmd("XINFO").arg("GROUPS").arg(stream).query(con) {
                Ok(v) => v,
                // No stream yet: from its start.
                Err(e) if e.code() == Some("ERR") => return Ok("0-0".into()),
                Err(e) => return Err(e),
            };
            Ok(values::last_delivered(&groups, group).unwrap_or_else(|| "0-0".into()))
        }
        From::Newest => {
            let v: Value =
                redis::cmd("XREVRANGE").arg(stream).arg("+").arg("-").arg("COUNT").arg(1).query(con)?;
            Ok(values::entries(&v)
                .and_then(|e| e.first().map(|e| e.id.clone()))
                .unwrap_or_else(|| "0-0".into()))
        }
    }
}

/// Each stream of an `XREAD` reply with the id of its newest entry.
fn newest_ids(reply: &Value) -> Vec<(String, String)> {
    let Some(items) = values::items(reply) else { return Vec::new() };
    // RESP2: [[name, entries], ...]; RESP3: {name: entries} flattened to [name, entries, ...].
    let pairs: Vec<(Value, Value)> = match items.first() {
        Some(Value::Array(_)) => items
            .iter()
            .filter_map(|p| {
                let p = values::items(p)?;
                Some((p.first()?.clone(), p.get(1)?.clone()))
            })
            .collect(),
        _ => items.chunks(2).filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone()))).collect(),
    };
    pairs
        .into_iter()
        .filter_map(|(name, entries)| {
            let newest = values::entries(&entries)?.last()?.id.clone();
            Some((values::text(&name)?, newest))
        })
        .collect()
}
