//! orchestrator-listener's [`ListenerSpool`] on the engine: [`RedisListener`].
//!
//! - Results: the fleet's results stream `P:results`, read through the consumer group
//!   `listener` by the one consumer `listener` (so a listener started elsewhere after this one
//!   died reads what it had taken and not committed). Taken = delivered; committed =
//!   acknowledged by `listener_commit`, in one script with the listener's state
//!   (`P:listener:state`).
//! - Events: added to `P:events` as they are written (`events_add`), and their ids kept in a
//!   set until the next commit: a crash before the commit hands the same results out again,
//!   the listener makes their events again under the same ids, and those are not added twice.
//!   Each result has its event in the stream exactly once.
//! - One listener serves a fleet: a lock in the engine (`P:listener:lock`, renewed at each
//!   commit and every few seconds; another host's listener waits for it) and a local flock on
//!   `ROOT/listener/` (another listener on this host exits at once, status 75).
//! - Heartbeats: when the fleet's heartbeats stream moves, every host's heartbeat of each
//!   followed worker, the freshest first, one round trip for all (a worker is healthy while any
//!   of its hosts is; the listener's series are per host), and new workers from `P:workers`.
//! - Arrivals: a blocked `XREAD` on `P:results` and `P:heartbeats` rings the loop's bell
//!   (wakeup.rs).
//! - With LISTENER_FILES (the default), results are also written to `results/W/<id>.json`
//!   (the lasting archive: they leave the engine after RESULT_TTL) and events to
//!   `triggers/orchestrator/`, for orchestrators that read files.
//!
//! Its calls wait for the engine (at most SPOOL_TIMEOUT each); while the engine cannot be
//! reached they fail fast (a reconnect at most every few seconds) and the listener's own retry
//! paths hold its events.

mod conn;
mod files;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Registry, Token};

use super::link::Bell;
use super::values::{self, StreamEntry};
use super::wakeup::{From, Wakeup};
use super::{RESULT_ID, RESULT_WORKER};
use crate::engine::redis::error::EngineError;
use crate::engine::redis::keys::{Fleet, LISTENER_GROUP};
use crate::engine::redis::ops::{Call, EventOut};
use crate::engine::redis::reply::Reply;
use crate::engine::redis::settings::Settings;
use crate::format::summary::{self, ResultReading};
use crate::spool::error::{Error, OpenError};
use crate::spool::listener::{
    Backlog, CommitError, Delivered, ListenerSpool, Loudness, Note, Notices, Outgoing, Saved, StoredHeartbeat,
};
use crate::spool::Layout;
use conn::Conn;

/// The one consumer of the listener's group.
const CONSUMER: &str = "listener";
/// How long the engine's lock lasts without a renewal; renewed every third of it.
const LOCK: Duration = Duration::from_secs(30);
/// The results stream keeps what is younger than this for readers without a group
/// (`submit --wait`); it is trimmed below the listener's cursor every [`TRIM_EVERY`].
const RESULTS_KEPT: Duration = Duration::from_secs(3600);
const TRIM_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct RedisListener {
    settings: Settings,
    fleet: Fleet,
    conn: Conn,
    holder: String,
    _lock: File,
    files: Option<files::Files>,
    discover: bool,
    followed: BTreeSet<String>,
    appeared: BTreeSet<String>,
    /// No state was saved: results older than the backfill are history.
    first: bool,
    /// Where the own pending list is read from; `None` once it is read to its end.
    pending_after: Option<String>,
    /// Results may wait in the stream.
    more: bool,
    taken: Vec<String>,
    /// Events were added since the last commit.
    wrote: bool,
    /// Each followed worker's heartbeats as last read: (host, JSON), the freshest first.
    beats: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    heard: Vec<String>,
    /// Heartbeats are to be read again.
    poll: bool,
    lock_at: Instant,
    trim_at: Instant,
    superseded: Option<String>,
    bell: Bell,
    wakeup: Option<Wakeup>,
    notes: Vec<Note>,
}

fn note(loudness: Loudness, message: &'static str, fields: Vec<(&'static str, String)>) -> Note {
    Note { loudness, message, fields }
}

fn spool_error(doing: &str, at: &str, e: EngineError) -> Error {
    Error::new(doing, at, io::Error::other(e.to_string()))
}

impl RedisListener {
    /// Takes the local lock, connects, checks the engine and takes the fleet's lock.
    pub(crate) fn open(
        settings: &Settings,
        layout: &Layout,
        files: bool,
    ) -> Result<RedisListener, OpenError> {
        let dir = layout.listener();
        crate::sys::durable::create_dir(&dir)
            .map_err(|e| OpenError::of_io(format!("cannot create {}: {e}", dir.display()), &e))?;
        let lock = crate::spool::fs::listener::lock(&dir)?;
        let (mut engine, _) = super::connect(settings).map_err(|e| match e {
            EngineError::Refused(line) => OpenError::Config(format!("SPOOL: {line}")),
            other => OpenError::Io(format!("cannot reach the engine {}: {other}", super::describe(settings))),
        })?;
        let fleet = Fleet::new(&settings.prefix);
        engine
            .ensure_fleet_groups(&fleet)
            .map_err(|e| OpenError::Io(format!("cannot make the listener's group: {e}")))?;
        let now = Instant::now();
        Ok(RedisListener {
            holder: super::hostname(),
            conn: Conn::new(settings, engine),
            fleet,
            settings: settings.clone(),
            _lock: lock,
            files: files.then(|| files::Files::new(layout.clone())),
            discover: false,
            followed: BTreeSet::new(),
            appeared: BTreeSet::new(),
            first: false,
            pending_after: Some("0".into()),
            more: true,
            taken: Vec::new(),
            wrote: false,
            beats: BTreeMap::new(),
            heard: Vec::new(),
            poll: true,
            lock_at: now,
            trim_at: now + TRIM_EVERY,
            superseded: None,
            bell: Bell::default(),
            wakeup: None,
            notes: Vec::new(),
        })
    }

    fn at(&self, key: &str) -> String {
        format!("{key} on {}", super::describe(&self.settings))
    }

    /// Takes or renews the fleet's lock; `Err`: another listener holds it.
    fn relock(&mut self) -> Result<(), String> {
        match self.conn.run(&self.fleet.listener_lock_call(&self.holder, LOCK)) {
            Ok(Reply::Lock { taken_by: Some(h) }) => Err(h),
            _ => Ok(()),
        }
    }

    /// Reads every host's heartbeat of every worker followed, and new workers.
    fn poll(&mut self) {
        let workers: Vec<String> = self.followed.iter().cloned().collect();
        let calls =
            [self.fleet.heartbeats_by_host(&workers), Call::command("SMEMBERS", vec![self.fleet.workers()])];
        let replies = match self.conn.batch(&calls) {
            Ok(r) => r,
            Err(_) => return,
        };
        let mut it = replies.into_iter();
        if let Some(Ok(Reply::Heartbeats(beats))) = it.next() {
            for (w, b) in workers.into_iter().zip(beats) {
                if self.beats.get(&w) != Some(&b) {
                    self.beats.insert(w.clone(), b);
                    self.heard.push(w);
                }
            }
        }
        if let Some(Ok(Reply::Value(v))) = it.next() {
            for w in values::items(&v).unwrap_or_default().iter().filter_map(values::text) {
                if self.discover && !self.followed.contains(&w) && self.appeared.insert(w.clone()) {
                    self.heard.push(w);
                }
            }
        }
    }

    /// Entries of the results stream: this consumer's pending ones first (taken before a
    /// crash or a restart, and not committed), then new ones.
    fn read(&mut self, max: usize) -> Result<Vec<StreamEntry>, EngineError> {
        let start = self.pending_after.clone().unwrap_or_else(|| ">".into());
        let call = Call::command("XREADGROUP", vec![])
            .arg("GROUP")
            .arg(LISTENER_GROUP)
            .arg(CONSUMER)
            .arg("COUNT")
            .num(max)
            .arg("STREAMS")
            .arg(self.fleet.results())
            .arg(&start);
        let Reply::Value(v) = self.conn.run(&call)? else { return Ok(Vec::new()) };
        let got = values::read_entries(&v).ok_or_else(|| EngineError::Reply(format!("XREADGROUP: {v:?}")))?;
        match self.pending_after.as_mut() {
            Some(after) => match got.last() {
                Some(last) if got.len() >= max => *after = last.id.clone(),
                _ => self.pending_after = None,
            },
            None => self.more = got.len() >= max,
        }
        Ok(got)
    }

    /// Each entry's result, read in one round trip.
    fn delivered(&mut self, entries: Vec<StreamEntry>, backfill: Duration) -> Vec<Delivered> {
        let calls: Vec<Call> = entries
            .iter()
            .map(|e| {
                let (w, id) =
                    (e.get(RESULT_WORKER).unwrap_or_default(), e.get(RESULT_ID).unwrap_or_default());
                Call::command("GET", vec![self.fleet.worker(&w).result(&id)])
            })
            .collect();
        let bodies = self.conn.batch(&calls).unwrap_or_default();
        let quiet = SystemTime::now().checked_sub(backfill).unwrap_or(UNIX_EPOCH);
        let quiet_ms = quiet.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut out = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            self.taken.push(e.id.clone());
            let (Some(worker), Some(id)) = (e.get(RESULT_WORKER), e.get(RESULT_ID)) else { continue };
            if !self.discover && !self.followed.contains(&worker) {
                continue;
            }
            let body = match bodies.get(i) {
                Some(Ok(Reply::Value(v))) => values::bytes(v),
                _ => None,
            };
            let reading = match &body {
                Some(b) => summary::read(b.as_slice(), b.len() as u64, &id),
                None => ResultReading::Unreadable(format!(
                    "the result of {id} is gone from the engine (RESULT_TTL passed)"
                )),
            };
            if let (Some(f), Some(b)) = (self.files.as_mut(), body) {
                f.result(&worker, &id, b);
            }
            let seq: i64 = e.id.split('-').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            out.push(Delivered {
                worker,
                written_ns: e.ms().saturating_mul(1_000_000).saturating_add(seq.min(999_999)),
                at: format!("{} {}", self.fleet.results(), e.id),
                reading,
                announce: !self.first || e.ms() >= quiet_ms,
                again: false,
            });
        }
        if let Some(f) = self.files.as_mut() {
            self.notes.extend(f.flush());
        }
        out
    }

    /// Trims the results stream below the listener's cursor (what no reader needs).
    fn trim(&mut self) {
        let call = self.fleet.trim(&self.fleet.results(), RESULTS_KEPT);
        let _ = self.conn.run(&call);
    }
}

impl ListenerSpool for RedisListener {
    fn load(&mut self) -> Result<Option<Saved>, OpenError> {
        let key = self.fleet.listener_state();
        let at = self.at(&key);
        let saved = match self.conn.run(&Call::command("GET", vec![key])) {
            Ok(Reply::Value(v)) => values::bytes(&v).map(|bytes| Saved { at, bytes }),
            Ok(_) => None,
            Err(e) => return Err(OpenError::Io(format!("cannot read the listener's state {at}: {e}"))),
        };
        self.first = saved.is_none();
        Ok(saved)
    }

    fn start(&mut self, discover: bool) -> Result<(), OpenError> {
        self.discover = discover;
        self.relock().map_err(|holder| {
            OpenError::Locked(format!(
                "another orchestrator-listener ({holder}) serves this fleet (SPOOL_PREFIX={}): it holds {}",
                self.settings.prefix,
                self.fleet.listener_lock()
            ))
        })?;
        self.lock_at = Instant::now() + LOCK / 3;
        Ok(())
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.bell.hang(registry, token)?;
        if self.wakeup.is_none() {
            let streams = vec![
                (self.fleet.results(), From::Group(LISTENER_GROUP)),
                (self.fleet.heartbeats(), From::Newest),
            ];
            self.wakeup = Some(Wakeup::spawn(&self.settings, streams, self.bell.clone(), None)?);
        }
        Ok(())
    }

    fn workers(&mut self) -> Vec<String> {
        match self.conn.run(&Call::command("SMEMBERS", vec![self.fleet.workers()])) {
            Ok(Reply::Value(v)) => {
                values::items(&v).unwrap_or_default().iter().filter_map(values::text).collect()
            }
            _ => Vec::new(),
        }
    }

    fn follow(&mut self, worker: &str, _named: bool) {
        if self.followed.insert(worker.to_owned()) {
            self.poll = true;
        }
    }

    fn rescan(&mut self) {
        self.beats.clear();
        self.poll = true;
    }

    fn prepare(&mut self) {
        self.poll();
    }

    fn drain(&mut self) -> Notices {
        if let Some(w) = &self.wakeup {
            self.more |= w.take(0);
            self.poll |= w.take(1);
        }
        if std::mem::take(&mut self.poll) {
            self.poll();
        }
        let mut n = Notices::default();
        for w in std::mem::take(&mut self.heard) {
            if self.followed.contains(&w) {
                n.heartbeats.push(w);
            } else {
                n.appeared.push(w);
            }
        }
        n
    }

    fn results(&mut self, max: usize, backfill: Duration) -> Vec<Delivered> {
        let mut out = Vec::new();
        // The own pending list, then (once it is read to its end) new entries.
        while out.len() < max && (self.more || self.pending_after.is_some()) {
            let pending = self.pending_after.is_some();
            match self.read(max - out.len()) {
                Ok(entries) => {
                    let n = entries.len();
                    out.extend(self.delivered(entries, backfill));
                    if n == 0 && !pending {
                        break;
                    }
                }
                Err(e) => {
                    let at = self.at(&self.fleet.results());
                    let fields = vec![("AT", at), ("ERROR", e.to_string())];
                    self.notes.push(note(Loudness::Retried, "cannot read results", fields));
                    break;
                }
            }
        }
        out
    }

    fn backlog(&self) -> Backlog {
        let waiting = (self.more || self.pending_after.is_some()) && self.conn.is_up();
        Backlog { results: usize::from(waiting), listings: 0 }
    }

    fn heartbeats(&mut self, worker: &str) -> Vec<(String, StoredHeartbeat)> {
        let beats = self.beats.get(worker).into_iter().flatten();
        beats.map(|(host, b)| (host.clone(), StoredHeartbeat::Found(b.clone()))).collect()
    }

    fn write_events(&mut self, events: &[Outgoing]) -> Vec<Result<(), Error>> {
        let mut outcomes = match self.files.as_mut() {
            Some(f) => f.events(events),
            None => events.iter().map(|_| Ok(())).collect(),
        };
        let out: Vec<EventOut> = events.iter().map(|e| EventOut { id: &e.id, json: &e.json }).collect();
        let at = self.at(&self.fleet.events());
        match self.conn.run(&self.fleet.events_add(&out)) {
            Ok(Reply::EventsAdded { .. }) => self.wrote = true,
            Ok(other) => {
                let e = EngineError::Reply(format!("{other:?}"));
                outcomes =
                    events.iter().map(|_| Err(spool_error("cannot add events to", &at, e.clone()))).collect();
            }
            Err(e) => {
                outcomes =
                    events.iter().map(|_| Err(spool_error("cannot add events to", &at, e.clone()))).collect();
            }
        }
        outcomes
    }

    fn event_at(&self, id: &str) -> String {
        match &self.files {
            Some(f) => f.event_at(id),
            None => format!("{} {id}", self.fleet.events()),
        }
    }

    fn state_at(&self) -> String {
        self.at(&self.fleet.listener_state())
    }

    fn dirty(&self) -> bool {
        !self.taken.is_empty() || self.wrote
    }

    fn commit(&mut self, state: serde_json::Value) -> Result<(), CommitError> {
        if let Some(h) = &self.superseded {
            return Err(CommitError::Superseded(format!("{h} holds {}", self.fleet.listener_lock())));
        }
        let bytes = serde_json::to_vec(&state).unwrap_or_default();
        let call = self.fleet.listener_commit(&self.holder, LOCK, &bytes, &self.taken);
        match self.conn.run(&call) {
            Ok(Reply::Committed { .. }) => {
                self.taken.clear();
                self.wrote = false;
                self.lock_at = Instant::now() + LOCK / 3;
                Ok(())
            }
            Ok(Reply::Lock { taken_by: Some(h) }) => {
                Err(CommitError::Superseded(format!("{h} holds {}", self.fleet.listener_lock())))
            }
            Ok(other) => Err(CommitError::Failed(spool_error(
                "cannot commit",
                &self.state_at(),
                EngineError::Reply(format!("{other:?}")),
            ))),
            Err(e) => Err(CommitError::Failed(spool_error("cannot commit", &self.state_at(), e))),
        }
    }

    fn next_deadline(&self, _settle: bool) -> Option<Instant> {
        Some(self.lock_at.min(self.trim_at))
    }

    fn tick(&mut self, now: Instant, _settle: bool) {
        if now >= self.lock_at {
            self.lock_at = now + LOCK / 3;
            if let Err(h) = self.relock() {
                self.superseded = Some(h);
            }
        }
        if now >= self.trim_at {
            self.trim_at = now + TRIM_EVERY;
            self.trim();
        }
    }

    fn notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }
}
