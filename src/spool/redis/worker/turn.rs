//! A turn's exchange with the engine: what comes back ([`RedisSpool::pump`]: outcomes of the
//! loop's ops, claims, leases, the link's changes), and the next batch
//! ([`RedisSpool::send_turn`]: at most one in flight).

use std::collections::HashSet;
use std::io;
use std::time::{Duration, Instant};

use super::tasks::{claim, Stored};
use super::work::{self, Ctx, Work};
use super::{InFlight, RedisSpool, PAUSE_RECHECK, RETRY};
use crate::engine::redis::error::EngineError;
use crate::engine::redis::io::Replicas;
use crate::engine::redis::reply::{Delivered, Fate, LeaseState, Reply};
use crate::spool::listener::{Loudness, Note};
use crate::spool::redis::link::{Finished, State};
use crate::spool::{Done, EntryId, Op};

fn note(loudness: Loudness, message: &'static str, fields: Vec<(&'static str, String)>) -> Note {
    Note { loudness, message, fields }
}

impl RedisSpool {
    /// Takes in what came back: the link's changes and the batches done.
    pub(super) fn pump(&mut self) {
        let finished = self.link.get_mut().poll();
        self.link_changed(Instant::now());
        for f in finished {
            self.finished(f);
        }
        self.armed_made();
        if self.wakeup.as_ref().is_some_and(|w| w.take(0)) {
            self.claims.more = true;
        }
        if self.wakeup.as_ref().is_some_and(|w| w.take(1)) {
            self.cancels.due = true;
        }
    }

    fn link_changed(&mut self, now: Instant) {
        let link = self.link.get_mut();
        let state = link.state().clone();
        if link.connects != self.claims.connects {
            self.claims.connects = link.connects;
            // Claims whose reply was lost are in the own pending list; others' idle entries
            // wait a lease, since their owners' renewals waited as long as ours.
            self.claims.gate.connected(now);
            self.claims.recover = true;
            self.claims.more = true;
            self.cancels.due = true;
        }
        if self.said.as_ref() == Some(&state) {
            return;
        }
        let engine = super::super::describe(&self.settings);
        match &state {
            State::Up => {
                let v = link.verdict();
                let server = v.as_ref().map_or_else(String::new, |v| v.server.clone());
                self.out.notes.push(note(
                    Loudness::Info,
                    "connected to the engine",
                    vec![
                        ("SPOOL", engine.clone()),
                        ("SERVER", server),
                        ("CONSUMER", self.settings.consumer.clone()),
                    ],
                ));
                for n in v.map(|v| v.notes).unwrap_or_default() {
                    self.out.notes.push(note(
                        Loudness::Info,
                        "engine setting worth knowing",
                        vec![("NOTE", n)],
                    ));
                }
            }
            // A refused engine stops the daemon with its one line (exit status 78).
            State::Down(_) if link.verdict().is_some_and(|v| !v.refusals.is_empty()) => {}
            State::Down(e) => self.out.notes.push(note(
                Loudness::Error,
                "the engine cannot be reached; no task starts until it can (outcomes are held)",
                vec![("SPOOL", engine), ("ERROR", e.clone())],
            )),
            State::Connecting => {}
        }
        self.said = Some(state);
    }

    /// Acts on one batch that came back.
    fn finished(&mut self, f: Finished) {
        let Some(flight) = self.in_flight.take_if(|b| b.id == f.id) else { return };
        self.claims.gate.call_took(f.took, f.at);
        let unconfirmed = match &f.replicated {
            Some(Ok(n)) if *n >= 1 => None,
            Some(Ok(_)) => {
                Some(EngineError::Unavailable("no replica confirmed the writes within SPOOL_TIMEOUT".into()))
            }
            Some(Err(e)) => Some(e.clone()),
            None => None,
        };
        for (w, reply) in flight.works.into_iter().zip(f.replies) {
            let reply = match (&unconfirmed, reply) {
                (Some(e), Ok(_)) if w.critical() => Err(e.clone()),
                (_, r) => r,
            };
            self.outcome(w, reply, f.at);
        }
    }

    fn outcome(&mut self, w: Work, reply: Result<Reply, EngineError>, now: Instant) {
        match w {
            Work::Op(op) => self.op_done(op, reply),
            w @ (Work::Requeue(_) | Work::Discard(_)) => {
                let (Work::Requeue(h) | Work::Discard(h)) = &w else { return };
                let entry = EntryId::from(h.entry.as_str());
                match reply {
                    Ok(_) => self.released(&entry),
                    Err(_) => {
                        self.tasks.not_ending(&entry);
                        self.retry_at.get_or_insert(now + RETRY);
                        self.failed.push(w);
                    }
                }
            }
            Work::Claim(n) => self.claim_outcome(n, reply, now, false),
            Work::Reclaim(n) => match reply {
                Ok(Reply::Claimed { cursor, delivered }) => {
                    self.claims.requested = self.claims.requested.saturating_sub(n);
                    self.claims.cursor = cursor;
                    self.delivered(delivered, true);
                }
                other => self.claim_outcome(n, other, now, false),
            },
            Work::Recover => {
                if let Ok(Reply::Claimed { delivered, .. }) = reply {
                    self.claims.recover = false;
                    let lost: Vec<Delivered> = delivered
                        .into_iter()
                        .filter(|d| !self.tasks.holds(&EntryId::from(d.entry.as_str())))
                        .collect();
                    self.delivered(lost, false);
                }
            }
            Work::Renew => {
                if let Ok(Reply::Leases(leases)) = reply {
                    for l in leases {
                        self.lease(l.entry, l.state);
                    }
                }
            }
            Work::Promote => {
                if let Ok(Reply::Promoted { moved, next_in }) = reply {
                    self.claims.promote_at = next_in.map(|d| now + d.max(Duration::from_millis(1)));
                    self.claims.more |= moved > 0;
                } else {
                    self.claims.promote_at = Some(now + RETRY);
                }
            }
            Work::Depth => {
                if let Ok(Reply::Depth { length, pending, .. }) = reply {
                    self.claims.queued = Some(length.saturating_sub(pending) as usize);
                }
            }
            Work::Pause(_) | Work::Receipt(..) => {}
            Work::Cancels => match reply {
                Ok(Reply::Value(v)) => self.cancels_read(&v),
                _ => self.cancels.due = true,
            },
            Work::DropRequest(_) => {
                if reply.is_err() {
                    self.retry_at.get_or_insert(now + RETRY);
                    self.failed.push(w);
                }
            }
        }
    }

    /// The outcome of a loop op.
    fn op_done(&mut self, op: Op, reply: Result<Reply, EngineError>) {
        let (kind, key) = work::kind_of(&op);
        match reply {
            Ok(r) => {
                if let (Some(key), true) = (&key, work::ends(&op)) {
                    self.ended(&op, &r);
                    self.released(key);
                }
                if let (Op::SaveState { task, .. }, Reply::Delayed { .. }) = (&op, &r) {
                    // The retry's time, on our clock: promote then (any host may first).
                    let wait = Duration::try_from_secs_f64(
                        task.state.retry_at.map_or(0.0, |t| t - crate::sys::clock::now_f64()),
                    )
                    .unwrap_or_default();
                    let at = Instant::now() + wait;
                    self.claims.promote_at = Some(self.claims.promote_at.map_or(at, |p| p.min(at)));
                }
                self.out.dones.push(Done { kind, key, error: None });
            }
            Err(e) => {
                self.out.dones.push(Done {
                    kind,
                    key: key.clone(),
                    error: Some(io::Error::other(e.to_string())),
                });
                if let (Some(key), true) = (&key, work::ends(&op)) {
                    // Still this host's until the retry lands: its lease is renewed meanwhile.
                    self.tasks.not_ending(key);
                }
                if work::kept(&op) {
                    self.retry_at.get_or_insert(Instant::now() + RETRY);
                    self.failed.push(Work::Op(op));
                }
            }
        }
    }

    /// What an ending op's reply says worth a note: this run's outcome was not the first.
    fn ended(&mut self, op: &Op, r: &Reply) {
        let (id, what) = match (op, r) {
            (Op::Complete { claim, .. } | Op::DeadLetter { claim, .. }, Reply::AlreadyDone | Reply::Gone) => {
                (claim.source_lossy(), "the task had a result already (another run was first): this run's outcome is discarded")
            }
            (Op::SaveState { claim, .. } | Op::Requeue { claim, .. }, Reply::Lost { .. } | Reply::Gone) => {
                (claim.source_lossy(), "the task is no longer this host's (taken over or finished elsewhere): its new state is dropped")
            }
            _ => return,
        };
        self.out.notes.push(note(Loudness::Warn, what, vec![("TASK_ID", id)]));
    }

    /// An entry is let go; a deferred entry of its task is handed out now.
    fn released(&mut self, entry: &EntryId) {
        if let Some(next) = self.tasks.release(entry) {
            self.out.claimed.push(next);
        }
    }

    /// Rows a claim, a reclaim or a recovery delivered.
    pub(super) fn delivered(&mut self, rows: Vec<Delivered>, reclaim: bool) {
        for d in rows {
            let Fate::Run(t) = d.fate else { continue };
            if reclaim {
                if let Some(prev) = &t.previous {
                    self.out.notes.push(note(
                        Loudness::Warn,
                        "took over a task from a host that renewed no lease (it died, or was cut off)",
                        vec![
                            ("TASK_ID", d.id.clone()),
                            ("HOST", prev.clone()),
                            ("RECLAIMS", t.reclaims.to_string()),
                        ],
                    ));
                }
            }
            if !self.tasks.hold(&d.entry, Stored::new(&d.id, &t)) {
                continue;
            }
            let c = claim(&d.entry, &d.id);
            if reclaim {
                self.out.reclaimed.push(c);
            } else {
                self.out.claimed.push(c);
            }
        }
    }

    /// The cancel requests read: those not handed out yet go to the loop, and those handed
    /// out that are gone (acted on by another host) are to be forgotten.
    fn cancels_read(&mut self, v: &redis::Value) {
        let all = work::cancel_requests(v);
        let standing: HashSet<String> = all.iter().map(|r| r.task_id.clone()).collect();
        let (kept, gone): (HashSet<String>, HashSet<String>) =
            std::mem::take(&mut self.cancels.handed).into_iter().partition(|id| standing.contains(id));
        self.cancels.handed = kept;
        self.out.withdrawn.extend(gone);
        for r in all {
            if self.cancels.handed.insert(r.task_id.clone()) {
                self.out.cancels.push(r);
            }
        }
    }

    pub(super) fn paused(&mut self, ms: i64, now: Instant) {
        let wait = u64::try_from(ms).map_or(PAUSE_RECHECK, Duration::from_millis);
        let first = self.claims.paused_until.is_none_or(|t| t <= now);
        self.claims.paused_until = Some(now + wait.max(Duration::from_millis(1)));
        if first {
            let secs = wait.as_secs_f64().to_string();
            self.out.notes.push(note(
                Loudness::Info,
                "another host of this worker hit a usage or rate limit: no task is claimed until it is over",
                vec![("PAUSED_FOR_S", secs)],
            ));
        }
    }

    /// A lease after a renewal.
    fn lease(&mut self, entry: String, state: LeaseState) {
        let key = EntryId::from(entry.as_str());
        match state {
            LeaseState::Held => {}
            LeaseState::Taken { by } => self.out.notes.push(note(
                Loudness::Warn,
                "lease lost: another host took over a task this host still runs; the first result wins",
                vec![("ENTRY", entry), ("HOST", by)],
            )),
            LeaseState::Gone => {
                if self.tasks.forget(&key) {
                    self.out.gone.push(key);
                }
            }
        }
    }

    /// Sends the turn's batch, unless one is in flight or the link is down.
    pub(super) fn send_turn(&mut self, now: Instant) {
        if self.in_flight.is_some() || !self.link.get_mut().is_up() {
            return;
        }
        let mut works: Vec<Work> = Vec::new();
        if self.retry_at.is_none_or(|t| now >= t) {
            self.retry_at = None;
            for w in &self.failed {
                if let Some(entry) = w.ending() {
                    self.tasks.ending(&entry);
                }
            }
            works.append(&mut self.failed);
        }
        let heartbeat = self.staged.iter().any(|w| matches!(w, Work::Op(Op::Heartbeat(_))));
        let pause = self.staged.iter().rev().find_map(|w| match w {
            Work::Op(Op::Heartbeat(hb)) => work::rate_limit_pause(hb),
            _ => None,
        });
        works.append(&mut self.staged);
        works.extend(pause.map(Work::Pause));
        // Every free slot is the plan's again (the armed claim's are armed again after).
        self.disarm();
        works.extend(self.planned(now, heartbeat));
        if works.is_empty() {
            return;
        }
        self.send(works);
    }

    /// The claims, reclaims and timed calls due this turn.
    fn planned(&mut self, now: Instant, heartbeat: bool) -> Vec<Work> {
        let c = &mut self.claims;
        let mut works = Vec::new();
        if heartbeat {
            works.extend([Work::Renew, Work::Depth]);
        }
        if heartbeat || std::mem::take(&mut self.cancels.due) {
            works.push(Work::Cancels);
        }
        if c.promote_at.is_some_and(|t| now >= t) || heartbeat {
            c.promote_at = None;
            works.push(Work::Promote);
        }
        if !c.started {
            // Before the loop read its leftovers: nothing of the queue is touched.
            return works;
        }
        if c.recover {
            // Nothing new is claimed before the own pending list is read.
            works.push(Work::Recover);
            return works;
        }
        let handed = self.out.claimed.len() + self.out.reclaimed.len();
        let mut want = c.free.saturating_sub(c.requested + handed);
        let paused = c.paused_until.is_some_and(|t| now < t);
        if want > 0 && c.more && !paused {
            c.requested += want;
            works.push(Work::Claim(want));
            want = 0;
        }
        if want > 0 && !paused && now >= c.reclaim_at && c.gate.is_open(now) {
            c.reclaim_at = now + self.settings.lease / 3;
            c.requested += want;
            works.push(Work::Reclaim(want));
        }
        let depth_due = std::mem::take(&mut c.depth_due);
        if (depth_due || works.iter().any(|w| matches!(w, Work::Claim(_)))) && !heartbeat {
            works.push(Work::Depth);
        }
        works
    }

    /// Sends `works` as one batch.
    pub(super) fn send(&mut self, works: Vec<Work>) {
        let renew = self.tasks.renewable();
        let ctx = Ctx {
            queue: &self.queue,
            result_ttl: self.settings.result_ttl,
            lease: self.settings.lease,
            cursor: &self.claims.cursor,
            renew: &renew,
            ledger: &self.ledger_key,
        };
        let mut kept = Vec::with_capacity(works.len());
        let mut calls = Vec::with_capacity(works.len());
        for w in works {
            if matches!(w, Work::Renew) && renew.is_empty() {
                continue;
            }
            if let Some(call) = w.call(&ctx) {
                calls.push(call);
                kept.push(w);
            }
        }
        let critical = kept.iter().any(Work::critical);
        let replicas = (self.replicas && critical).then(|| Replicas {
            count: 1,
            timeout: self.settings.timeout,
            aof: self.link.get_mut().verdict().is_some_and(|v| v.waitaof),
        });
        let id = self.link.get_mut().send(calls, replicas);
        self.in_flight = Some(InFlight { id, works: kept });
    }

    /// Sends everything and waits until it is written or has failed (at most a few
    /// SPOOL_TIMEOUTs): start-up recovery and the last heartbeat.
    pub(super) fn drain_wait(&mut self) {
        let deadline = Instant::now() + self.settings.timeout * 3;
        loop {
            self.pump();
            self.send_turn(Instant::now());
            let Some(id) = self.in_flight.as_ref().map(|b| b.id) else {
                if !self.staged.is_empty() {
                    self.fail_staged("the engine cannot be reached");
                }
                return;
            };
            match self.link.get_mut().wait_for(id, deadline) {
                Some(f) => self.finished(f),
                None => return,
            }
            if self.staged.is_empty() && (self.failed.is_empty() || self.retry_at.is_some()) {
                self.pump();
                return;
            }
        }
    }

    /// Reports the staged ops as failed (kept to try again), when nothing can be sent.
    fn fail_staged(&mut self, why: &str) {
        for w in std::mem::take(&mut self.staged) {
            match w {
                Work::Op(op) => self.op_done(op, Err(EngineError::Connection(why.into()))),
                other => self.failed.push(other),
            }
        }
    }

    /// When the spool's own timers are due (only while the link is up and nothing is in
    /// flight: a batch in flight rings the bell when it is back).
    pub(super) fn deadline(&self) -> Option<Instant> {
        let out = &self.out;
        if !out.claimed.is_empty()
            || !out.cancels.is_empty()
            || !out.withdrawn.is_empty()
            || !out.reclaimed.is_empty()
            || !out.gone.is_empty()
            || !out.notes.is_empty()
        {
            return Some(Instant::now());
        }
        if self.in_flight.is_some() || !self.link.borrow().is_up() {
            return None;
        }
        let c = &self.claims;
        let now = Instant::now();
        if self.cancels.due {
            return Some(now);
        }
        let mut at = c.promote_at;
        if c.free > c.requested.saturating_sub(c.armed) {
            // While paused, only the pause's end; else the next reclaim, once the gate opens.
            let next = match c.paused_until.filter(|p| *p > now) {
                Some(p) => p,
                None => c.reclaim_at.max(c.gate.opens_at()),
            };
            at = Some(at.map_or(next, |a| a.min(next)));
        }
        at
    }
}
