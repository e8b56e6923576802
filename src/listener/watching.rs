//! Which workers the listener follows, and what it hears of them from the spool: heartbeats
//! written, workers that show up, word lost (a rescan). What the spool watches, and how, is
//! the backend's ([`crate::spool::listener::ListenerSpool`]).

use std::collections::BTreeMap;
use std::time::Instant;

use super::freshness::Freshness;
use super::{health, HostBeat, Listener, Live, MAX_WORKERS};
use crate::config::worker_name::is_allowed;
use crate::error::Fatal;
use crate::log::Field;
use crate::spool::listener::{Loudness, Notices};
use crate::sys::clock::now_f64;

impl Listener {
    /// Start-up: the spool watched, every worker followed and its heartbeat read.
    pub(super) fn start_watching(&mut self) -> Result<(), Fatal> {
        self.spool.start(self.cfg.workers.is_none())?;
        self.rescan();
        self.log_notes();
        Ok(())
    }

    /// Every worker found again: the spool looked at again, heartbeats read.
    pub(super) fn rescan(&mut self) {
        self.spool.rescan();
        for (name, named) in self.wanted() {
            self.follow(&name, named);
        }
        let names: Vec<String> = self.workers.keys().cloned().collect();
        for name in names {
            self.read_heartbeat(&name, false);
        }
    }

    /// The workers to follow: WORKERS, or every worker the spool has a trace of (and those
    /// followed before).
    fn wanted(&mut self) -> Vec<(String, bool)> {
        if let Some(list) = &self.cfg.workers {
            return list.iter().map(|w| (w.clone(), true)).collect();
        }
        let mut names: Vec<String> = self.state.workers.keys().cloned().collect();
        names.extend(self.spool.workers());
        names.sort();
        names.dedup();
        names.into_iter().filter(|n| is_allowed(n)).map(|n| (n, false)).collect()
    }

    /// Starts following `name`, if it is not followed yet. Returns whether it is followed.
    fn follow(&mut self, name: &str, named: bool) -> bool {
        if self.workers.contains_key(name) {
            return true;
        }
        if self.workers.len() >= MAX_WORKERS {
            self.log.warn("too many workers; this one is not followed", &[("WORKER", &name)]);
            return false;
        }
        self.workers.insert(name.to_string(), Live { named, ..Live::default() });
        self.state.workers.entry(name.to_string()).or_default();
        self.spool.follow(name, named);
        true
    }

    /// A new worker name seen in the spool: followed when WORKERS is unset. The caller reads
    /// its heartbeat.
    fn discover(&mut self, name: &str) -> bool {
        if self.cfg.workers.is_some() || !self.follow(name, false) {
            return false;
        }
        self.log.info("following a new worker", &[("WORKER", &name)]);
        true
    }

    /// Reads every host's heartbeat of `worker`; `written`: the spool has just said one was
    /// written (see [`super::freshness`]: a host's that did not change keeps aging).
    fn read_heartbeat(&mut self, worker: &str, written: bool) {
        let readings: Vec<(String, health::HeartbeatReading)> =
            self.spool.heartbeats(worker).into_iter().map(|(host, b)| (host, health::read(b))).collect();
        if readings.iter().any(|(_, r)| matches!(r, health::HeartbeatReading::Beat(_))) {
            let ws = self.state.workers.entry(worker.to_string()).or_default();
            if !ws.health.seen_heartbeat {
                ws.health.seen_heartbeat = true;
                self.state_dirty = true;
            }
        }
        let Some(live) = self.workers.get_mut(worker) else { return };
        let mut before: BTreeMap<String, Freshness> =
            live.hosts.drain(..).filter_map(|h| Some((h.host, h.fresh?))).collect();
        let (now, wall) = (Instant::now(), now_f64());
        live.hosts = readings
            .into_iter()
            .map(|(host, reading)| {
                let fresh = match &reading {
                    health::HeartbeatReading::Beat(b) => {
                        Some(Freshness::read(before.remove(&host), b.timestamp, written, now, wall))
                    }
                    _ => None,
                };
                HostBeat { host, reading, fresh }
            })
            .collect();
    }

    /// Takes what the spool has to say, and acts on it.
    pub(super) fn read_watch(&mut self) {
        let Notices { heartbeats, appeared, rescan } = self.spool.drain();
        for worker in heartbeats {
            if self.workers.contains_key(&worker) || self.discover(&worker) {
                self.read_heartbeat(&worker, true);
            }
        }
        for worker in appeared {
            if !self.workers.contains_key(&worker) && self.discover(&worker) {
                self.read_heartbeat(&worker, false);
            }
        }
        if rescan {
            self.rescan();
        }
    }

    /// Logs what the spool had to say of its own.
    pub(super) fn log_notes(&mut self) {
        for note in self.spool.notes() {
            let fields: Vec<Field> =
                note.fields.iter().map(|(k, v)| (*k, v as &dyn std::fmt::Display)).collect();
            match note.loudness {
                Loudness::Info => self.log.info(note.message, &fields),
                Loudness::Warn => self.log.warn(note.message, &fields),
                Loudness::Error => self.log.error(note.message, &fields),
                Loudness::Retried => self.retried_error(note.message, &fields),
            }
        }
    }
}
