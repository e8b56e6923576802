//! The synchronous side of [`RedisSpool`]: calls that wait for a round trip, at most
//! SPOOL_TIMEOUT. Only what runs before the loop turns (start-up recovery, the ledger), the
//! pipe intake's submits, and tools and tests use them; the loop's own claims go through
//! `claim_slots` and `intake`.

use std::io;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::tasks::{claim, Stored};
use super::work::RECOVER_COUNT;
use super::RedisSpool;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::keys::GROUP;
use crate::engine::redis::ops::Call;
use crate::engine::redis::reply::{Delivered, Fate, Reply};
use crate::format::records::ResultHead;
use crate::spool::redis::values;
use crate::spool::redis::ENQUEUE_MEMORY_LIMIT;
use crate::spool::{CancelRequest, Claim, Entry, EntryId, Scan};

fn io_err(e: EngineError) -> io::Error {
    io::Error::other(e.to_string())
}

impl RedisSpool {
    /// One call, waited for.
    fn one(&self, call: Call) -> Result<Reply, EngineError> {
        let mut link = self.link.borrow_mut();
        link.round_trip(vec![call], self.settings.timeout)?
            .pop()
            .unwrap_or_else(|| Err(EngineError::Reply("no reply".into())))
    }

    /// Claims one entry and waits for it (the contract's `claim`; the loop claims by itself).
    pub(super) fn sync_claim(&mut self) -> io::Result<Option<Claim>> {
        // What is staged goes first: it may change what this reads.
        self.drain_wait();
        // Entries already done or stale are dropped by the script: look again, a few times.
        for _ in 0..16 {
            let delivered = match self.one(self.queue.claim(1)).map_err(io_err)? {
                Reply::Claimed { delivered, .. } => delivered,
                _ => return Ok(None),
            };
            let Some(d) = delivered.into_iter().next() else { return Ok(None) };
            if let Fate::Run(t) = &d.fate {
                if self.tasks.hold(&d.entry, Stored::new(&d.id, t)) {
                    return Ok(Some(claim(&d.entry, &d.id)));
                }
            }
        }
        Ok(None)
    }

    /// This consumer's own pending entries: what it held when it died (or claims whose reply
    /// it lost). The engine counts no reclaim for them; the loop does, as for the folders.
    pub(super) fn sync_leftovers(&mut self) -> io::Result<Vec<Claim>> {
        // What is staged goes first: it may change what this reads.
        self.drain_wait();
        let mut out = Vec::new();
        let mut after = "0".to_string();
        loop {
            let rows: Vec<Delivered> =
                match self.one(self.queue.recover(&after, RECOVER_COUNT, false)).map_err(io_err)? {
                    Reply::Claimed { delivered, .. } => delivered,
                    other => return Err(io::Error::other(format!("unexpected reply {other:?}"))),
                };
            let n = rows.len();
            if let Some(last) = rows.last() {
                after = last.entry.clone();
            }
            for d in rows {
                if let Fate::Run(t) = &d.fate {
                    let held = self.tasks.hold(&d.entry, Stored::new(&d.id, t));
                    if held || self.tasks.holds_entry(&EntryId::from(d.entry.as_str())) {
                        out.push(claim(&d.entry, &d.id));
                    }
                }
            }
            if n < RECOVER_COUNT {
                break;
            }
        }
        // Read: the reconnect that made this connection needs no second look, and claims
        // may be made from now on.
        let link = self.link.get_mut();
        self.claims.connects = link.connects;
        self.claims.recover = false;
        self.claims.started = true;
        self.claims.gate.connected(Instant::now());
        Ok(out)
    }

    /// The entries not delivered yet, oldest first (after the group's last-delivered-id).
    pub(super) fn sync_scan(&mut self) -> io::Result<Scan> {
        // What is staged goes first: it may change what this reads.
        self.drain_wait();
        let q = self.queue.keys().queue();
        let groups = match self.one(Call::command("XINFO", vec![]).arg("GROUPS").arg(&q)).map_err(io_err)? {
            Reply::Value(v) => v,
            _ => return Ok(Scan::default()),
        };
        let ldid = values::last_delivered(&groups, GROUP).unwrap_or_else(|| "0-0".into());
        let range = Call::command("XRANGE", vec![q]).arg(format!("({ldid}")).arg("+");
        let Reply::Value(v) = self.one(range).map_err(io_err)? else { return Ok(Scan::default()) };
        let entries = values::entries(&v).unwrap_or_default();
        let listed = entries
            .into_iter()
            .filter_map(|e| {
                let ms = u64::try_from(e.ms()).unwrap_or(0);
                Some(Entry {
                    id: EntryId::from(e.get("id")?),
                    arrived: UNIX_EPOCH + Duration::from_millis(ms),
                })
            })
            .collect();
        let cancels = self.sync_cancels()?;
        Ok(Scan { entries: listed, ignored: Vec::new(), cancels })
    }

    /// Every request to cancel a task of this worker (each now counted as handed out).
    fn sync_cancels(&mut self) -> io::Result<Vec<CancelRequest>> {
        let call = Call::command("HGETALL", vec![self.queue.keys().cancels()]);
        let Reply::Value(v) = self.one(call).map_err(io_err)? else { return Ok(Vec::new()) };
        let all = super::work::cancel_requests(&v);
        self.cancels.handed = all.iter().map(|r| r.task_id.clone()).collect();
        Ok(all)
    }

    /// Takes a queued (or waiting) task out of the queue to cancel it.
    pub(super) fn sync_withdraw(&mut self, task_id: &str) -> io::Result<Option<Claim>> {
        // What is staged goes first: it may change what this reads.
        self.drain_wait();
        match self.one(self.queue.withdraw(task_id)).map_err(io_err)? {
            Reply::Withdrawn { entry, task } => {
                let held = self.tasks.hold_withdrawn(&entry, Stored::new(task_id, &task));
                Ok(held.then(|| claim(&entry, task_id)))
            }
            _ => Ok(None),
        }
    }

    /// Queues tasks (the pipe intake), each once: a task whose id is queued, held, waiting
    /// or has a result is refused (`AlreadyExists`).
    pub(super) fn sync_submit(&mut self, tasks: Vec<(String, Vec<u8>)>) -> Vec<io::Result<EntryId>> {
        // What is staged goes first: it may change what this reads.
        self.drain_wait();
        let calls: Vec<Call> =
            tasks.iter().map(|(id, doc)| self.queue.enqueue(id, doc, None, ENQUEUE_MEMORY_LIMIT)).collect();
        let replies = self.link.borrow_mut().round_trip(calls, self.settings.timeout);
        match replies {
            Err(e) => tasks.iter().map(|_| Err(io_err(e.clone()))).collect(),
            Ok(replies) => tasks
                .iter()
                .zip(replies)
                .map(|((id, _), r)| match r {
                    Ok(Reply::Queued { .. }) => Ok(EntryId::from(id.as_str())),
                    Ok(Reply::Duplicate { of }) => Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("a task {id} exists already ({of})"),
                    )),
                    Ok(other) => Err(io::Error::other(format!("unexpected reply {other:?}"))),
                    Err(e) => Err(io_err(e)),
                })
                .collect(),
        }
    }

    /// The ledger this host saved last.
    pub(super) fn sync_ledger(&self) -> io::Result<Option<Vec<u8>>> {
        match self.one(Call::command("GET", vec![self.ledger_key.clone()])).map_err(io_err)? {
            Reply::Value(v) => Ok(values::bytes(&v)),
            _ => Ok(None),
        }
    }

    /// The result of `task_id`, read back; `None` when there is none (or it cannot be read).
    pub(super) fn sync_result(&self, task_id: &str) -> Option<ResultHead> {
        let key = self.queue.keys().result(task_id);
        match self.one(Call::command("GET", vec![key])) {
            Ok(Reply::Value(v)) => serde_json::from_slice(&values::bytes(&v)?).ok(),
            _ => None,
        }
    }
}
