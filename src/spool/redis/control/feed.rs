//! Blocking reads of the fleet's streams for watcherctl, each on a connection of its own:
//! [`Results`] wakes `submit --wait` when a result of its worker is written (it starts at the
//! stream's newest entry when it is made, so a result written after that is never missed),
//! and [`Events`] reads the listener's events, oldest first, and follows them.

use std::time::{Duration, Instant, UNIX_EPOCH};

use redis::Value;

use crate::engine::redis::client::Engine;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::settings::Settings;
use crate::spool::control::{EventFeed, EventsRead, StoredEvent, Waiter};
use crate::spool::error::Error;
use crate::spool::redis::values::{self, StreamEntry};
use crate::spool::redis::{EVENT_ID, EVENT_JSON, RESULT_WORKER};

/// One `XREAD` blocks at most this long (then the caller's deadline is looked at again).
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read at most at once.
const COUNT: usize = 1000;

/// A connection for blocking reads: its read time-out covers a whole block.
fn reader(settings: &Settings) -> Result<Engine, EngineError> {
    let engine = Engine::connect(&settings.target, settings.password.as_deref(), settings.timeout)?;
    engine.set_read_timeout(Some(BLOCK + settings.timeout))?;
    Ok(engine)
}

/// `XREAD` of `stream` after `cursor`, blocking up to `block` (none: not at all).
fn read(
    engine: &mut Engine,
    stream: &str,
    cursor: &str,
    block: Option<Duration>,
) -> Result<Vec<StreamEntry>, EngineError> {
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(COUNT);
    if let Some(b) = block {
        cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
    }
    cmd.arg("STREAMS").arg(stream).arg(cursor);
    let v: Value = cmd.query(engine.connection())?;
    values::read_entries(&v).ok_or_else(|| EngineError::Reply(format!("XREAD: {v:?}")))
}

/// The id of the newest entry of `stream` ("0-0" when it is empty or missing).
fn newest(engine: &mut Engine, stream: &str) -> Result<String, EngineError> {
    let v: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(engine.connection())?;
    Ok(values::entries(&v).and_then(|e| e.first().map(|e| e.id.clone())).unwrap_or_else(|| "0-0".into()))
}

/// Wakes when a result of `worker` is written.
pub(super) struct Results {
    engine: Engine,
    stream: String,
    worker: String,
    cursor: String,
}

impl Results {
    pub(super) fn open(settings: &Settings, stream: String, worker: &str) -> Result<Results, EngineError> {
        let mut engine = reader(settings)?;
        let cursor = newest(&mut engine, &stream)?;
        Ok(Results { engine, stream, worker: worker.to_owned(), cursor })
    }
}

impl Waiter for Results {
    fn wait(&mut self, deadline: Option<Instant>) -> std::io::Result<bool> {
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let block = match left {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d.min(BLOCK)),
                None => Some(BLOCK),
            };
            let got = read(&mut self.engine, &self.stream, &self.cursor, block)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if let Some(last) = got.last() {
                self.cursor = last.id.clone();
            }
            if got.iter().any(|e| e.get(RESULT_WORKER).as_deref() == Some(self.worker.as_str())) {
                return Ok(true);
            }
            if block.is_none() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }
}

/// The listener's events, each once, oldest first.
pub(super) struct Events {
    engine: Engine,
    stream: String,
    cursor: String,
}

impl Events {
    pub(super) fn open(settings: &Settings, stream: String, _follow: bool) -> Result<Events, EngineError> {
        Ok(Events { engine: reader(settings)?, stream, cursor: "0-0".into() })
    }
}

impl EventFeed for Events {
    fn next(&mut self, wait: bool) -> Result<EventsRead, Error> {
        let block = wait.then_some(BLOCK);
        let got = read(&mut self.engine, &self.stream, &self.cursor, block)
            .map_err(|e| Error::new("cannot read", &self.stream, std::io::Error::other(e.to_string())))?;
        let mut out = EventsRead::default();
        for e in got {
            self.cursor = e.id.clone();
            let at = format!("{} {}", self.stream, e.id);
            let (Some(name), Some(json)) = (e.get(EVENT_ID), e.get(EVENT_JSON)) else {
                let bad = std::io::Error::other("not an event (no id or no event field)");
                out.unreadable.push(Error::new("cannot read", at, bad));
                continue;
            };
            match serde_json::from_str(&json) {
                Ok(value) => {
                    let ms = u64::try_from(e.ms()).unwrap_or(0);
                    let written = UNIX_EPOCH + Duration::from_millis(ms);
                    out.events.push(StoredEvent { name, written, value });
                }
                Err(err) => out.unreadable.push(Error::new("cannot read", at, std::io::Error::other(err))),
            }
        }
        // Written in the order the listener made them; named by the time of what they report.
        out.events.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
