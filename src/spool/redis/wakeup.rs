//! The wake-up for new tasks: a thread with a connection of its own, blocked in `XREAD BLOCK`
//! on the worker's stream from the newest entry it has seen. `XREAD` claims nothing (a blocked
//! `XREADGROUP` could not be taken back: docs/redis.md, "Pickup"), so every delivery still
//! goes through the `claim` script, with the free slots of that moment; this thread only says
//! that entries arrived, and rings the loop's bell.
//!
//! It starts from the group's last-delivered-id, so what was queued and not delivered before
//! it connected is reported at once; after a lost connection it starts there again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use redis::Value;

use super::link::Bell;
use crate::engine::redis::client::Engine;
use crate::engine::redis::keys::{Keys, GROUP};
use crate::engine::redis::settings::Settings;

/// How long one `XREAD` blocks; a stop is noticed after it at most.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries read at most per `XREAD` (only the newest id is kept).
const COUNT: usize = 1000;
/// The wait before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// The loop's end: whether entries arrived since the last look.
pub(crate) struct Wakeup {
    arrived: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Wakeup {
    /// Starts the thread on `keys`' stream.
    pub(crate) fn spawn(settings: &Settings, keys: &Keys, bell: Bell) -> std::io::Result<Wakeup> {
        let arrived = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let watch = Watch {
            settings: settings.clone(),
            stream: keys.queue(),
            bell,
            arrived: arrived.clone(),
            stop: stop.clone(),
        };
        thread::Builder::new().name("spool-wakeup".into()).spawn(move || watch.run())?;
        Ok(Wakeup { arrived, stop })
    }

    /// Whether entries arrived since the last call.
    pub(crate) fn take(&self) -> bool {
        self.arrived.swap(false, Ordering::AcqRel)
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
    stream: String,
    bell: Bell,
    arrived: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(self) {
        while !self.stopped() {
            // Errors end a watch; the next starts from the group's cursor again, so nothing
            // that arrived meanwhile is missed.
            let _ = self.watch();
            if !self.stopped() {
                thread::sleep(RETRY);
            }
        }
    }

    fn watch(&self) -> Result<(), redis::RedisError> {
        let s = &self.settings;
        let mut engine = Engine::connect(&s.target, s.password.as_deref(), s.timeout)
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "connect", e.to_string())))?;
        engine
            .set_read_timeout(Some(BLOCK + s.timeout))
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "timeout", e.to_string())))?;
        let con = engine.connection();
        let mut cursor = last_delivered(con, &self.stream)?;
        // What was not delivered yet is news too.
        self.arrived.store(true, Ordering::Release);
        self.bell.ring();
        while !self.stopped() {
            let reply: Value = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(COUNT)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(&cursor)
                .query(con)?;
            if let Some(newest) = newest_id(&reply) {
                cursor = newest;
                self.arrived.store(true, Ordering::Release);
                self.bell.ring();
            }
        }
        Ok(())
    }
}

/// The worker group's last-delivered-id ("0-0" when the stream or the group is missing yet).
fn last_delivered(con: &mut redis::Connection, stream: &str) -> Result<String, redis::RedisError> {
    let groups: Value = match redis::cmd("XINFO").arg("GROUPS").arg(stream).query(con) {
        Ok(v) => v,
        Err(e) if e.code() == Some("ERR") => return Ok("0-0".into()),
        Err(e) => return Err(e),
    };
    let Value::Array(groups) = groups else { return Ok("0-0".into()) };
    for g in groups {
        let fields = match g {
            Value::Array(f) => f,
            Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => continue,
        };
        let get = |name: &str| {
            fields
                .chunks(2)
                .find(|kv| text(&kv[0]).as_deref() == Some(name))
                .and_then(|kv| kv.get(1))
                .and_then(text)
        };
        if get("name").as_deref() == Some(GROUP) {
            return Ok(get("last-delivered-id").unwrap_or_else(|| "0-0".into()));
        }
    }
    Ok("0-0".into())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The id of the newest entry of an `XREAD` reply of one stream, if it has any.
fn newest_id(reply: &Value) -> Option<String> {
    let streams = match reply {
        Value::Array(a) => a.clone(),
        Value::Map(m) => m.iter().map(|(k, v)| Value::Array(vec![k.clone(), v.clone()])).collect(),
        _ => return None,
    };
    let Value::Array(stream) = streams.first()? else { return None };
    let Value::Array(entries) = stream.get(1)? else { return None };
    let Value::Array(last) = entries.last()? else { return None };
    text(last.first()?)
}
