//! The scripts' replies, typed. Each script's header (scripts/*.lua) gives the shape read here.

use std::time::Duration;

use redis::Value;

use super::error::EngineError;
use super::ops::Kind;

/// What happened to one entry a claim, a recovery or a reclaim delivered.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// Held by this host now: run it.
    Run(Task),
    /// Its task already has a result: the entry was acknowledged and deleted.
    Done,
    /// The entry names no task (or a task that moved on to another entry): dropped.
    Stale,
}

/// A task delivered to run, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// The task JSON as submitted.
    pub doc: Vec<u8>,
    /// The daemon's `_watcher` state JSON, if one was saved.
    pub state: Option<Vec<u8>>,
    /// Times the task was reclaimed (this delivery included, when it was one).
    pub reclaims: u32,
    /// When it was first queued (server ms).
    pub queued_at_ms: i64,
    /// The host that held it before, when it was taken over.
    pub previous: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Delivered {
    pub entry: String,
    pub id: String,
    pub fate: Fate,
}

/// One entry's lease after a renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub entry: String,
    pub state: LeaseState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Still this host's; renewed.
    Held,
    /// Another host took it over (after this one missed a lease): its own run is going on.
    Taken { by: String },
    /// Acknowledged: a result exists, or it was retried or dead-lettered elsewhere.
    Gone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DlqRefusal {
    /// No dead letter by that id.
    Absent,
    /// The task is queued, held or waiting again.
    Busy,
    /// Its result is not a failure.
    Completed,
}

/// A script's reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Queued under this stream entry (enqueue, requeue, dlq retry).
    Queued {
        entry: String,
    },
    /// Enqueue refused: the task exists in this phase (`queued`, `claimed`, `delayed`) or its
    /// result does (`result`).
    Duplicate {
        of: String,
    },
    /// Entries delivered. `cursor`: after a claim, the group's last-delivered-id, where a
    /// wait for new arrivals starts (`XREAD BLOCK`); after a reclaim, where the next
    /// reclaim's scan of the pending list starts ("0-0": it went round).
    Claimed {
        cursor: String,
        delivered: Vec<Delivered>,
    },
    /// The worker is paused for `ms` more (-1: without end); nothing was delivered.
    Paused {
        ms: i64,
        last_delivered: String,
    },
    /// A reclaim refused for `ms` more: the whole fleet was silent (HEARTBEAT's stall rule).
    Stalled {
        ms: i64,
    },
    /// The result is written, with this results-stream entry.
    Written {
        event: String,
    },
    /// The dead letter is written (with the results-stream entry of its failed result).
    Dead {
        event: Option<String>,
    },
    /// The task already had a result: this run's entry was only acknowledged.
    AlreadyDone,
    /// The entry is acknowledged already, or the task is no more.
    Gone,
    /// Another host holds the entry now.
    Lost {
        holder: String,
    },
    /// The retry waits until this server time (ms).
    Delayed {
        due_ms: i64,
    },
    Promoted {
        moved: u64,
        next_in: Option<Duration>,
    },
    Leases(Vec<Lease>),
    DlqRefused(DlqRefusal),
    /// The server's time (ms) of a heartbeat.
    HeartbeatAt {
        ms: i64,
    },
    /// How long the pause lasts from now (ms; -1 without end).
    PauseFor {
        ms: i64,
    },
    /// The spend of the window, in USD.
    Spent {
        usd: f64,
    },
    Trimmed {
        count: u64,
        min_id: String,
    },
    /// Not trimmed, and why.
    Untrimmed {
        why: String,
    },
    /// forget_consumer: `deleted`, `absent`, or `holds` with its pending count.
    Consumer {
        outcome: String,
        pending: i64,
    },
    /// discard: the entry was this host's and is dropped.
    Discarded,
    /// depth: the stream's length, its pending entries, the retries waiting.
    Depth {
        length: u64,
        pending: u64,
        delayed: u64,
    },
    /// A plain command's reply.
    Value(Value),
    /// The listener's commit: written, with this many results acknowledged.
    Committed {
        acked: u64,
    },
    /// Events added to the stream (those written before are not counted).
    EventsAdded {
        added: u64,
    },
    /// The listener's lock: held by this holder (`None`), or by another.
    Lock {
        taken_by: Option<String>,
    },
    /// Heartbeats, one list per worker asked for: each host's (host, JSON), the freshest
    /// first; empty: none.
    Heartbeats(Vec<Vec<(String, Vec<u8>)>>),
    /// withdraw: the task is out of the queue, held under `entry` (deleted) to be cancelled.
    Withdrawn {
        entry: String,
        task: Task,
    },
    /// withdraw: the task is not queued nor waiting: unknown (`None`) or held by a host.
    NotWithdrawn {
        holder: Option<String>,
    },
    /// receipt: kept (`true`), or the task is no longer held by that entry.
    Receipt {
        kept: bool,
    },
}

fn bad(kind: Kind, v: &Value) -> EngineError {
    EngineError::Reply(format!("{kind:?}: {v:?}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

/// `{tag, x}` replies: the tag and the second item.
fn tagged(v: &Value) -> Option<(String, &Value)> {
    let a = items(v)?;
    Some((text(a.first()?)?, a.get(1)?))
}

fn row(v: &Value) -> Option<Delivered> {
    let a = items(v)?;
    let s = |i: usize| a.get(i).and_then(text);
    let (entry, id, outcome) = (s(0)?, s(1)?, s(2)?);
    let fate = match outcome.as_str() {
        "claimed" => {
            let state = a.get(4).and_then(bytes).filter(|b| !b.is_empty());
            let previous = s(7).filter(|p| !p.is_empty());
            Fate::Run(Task {
                doc: a.get(3).and_then(bytes)?,
                state,
                reclaims: u32::try_from(a.get(5).and_then(int)?).ok()?,
                queued_at_ms: a.get(6).and_then(int)?,
                previous,
            })
        }
        "done" => Fate::Done,
        "orphan" | "stale" => Fate::Stale,
        _ => return None,
    };
    Some(Delivered { entry, id, fate })
}

fn claimed(v: &Value) -> Option<Reply> {
    let a = items(v)?;
    match text(a.first()?)?.as_str() {
        "claimed" => {
            let delivered = a[2..].iter().map(row).collect::<Option<Vec<_>>>()?;
            Some(Reply::Claimed { cursor: text(a.get(1)?)?, delivered })
        }
        "paused" => Some(Reply::Paused { ms: int(a.get(1)?)?, last_delivered: text(a.get(2)?)? }),
        "stalled" => Some(Reply::Stalled { ms: int(a.get(1)?)? }),
        _ => None,
    }
}

fn withdrawn(v: &Value) -> Option<Reply> {
    let a = items(v)?;
    match text(a.first()?)?.as_str() {
        "withdrawn" => Some(Reply::Withdrawn {
            entry: text(a.get(1)?)?,
            task: Task {
                doc: a.get(2).and_then(bytes)?,
                state: a.get(3).and_then(bytes).filter(|b| !b.is_empty()),
                reclaims: u32::try_from(a.get(4).and_then(int)?).ok()?,
                queued_at_ms: a.get(5).and_then(int)?,
                previous: None,
            },
        }),
        "absent" => Some(Reply::NotWithdrawn { holder: None }),
        "held" => Some(Reply::NotWithdrawn { holder: Some(text(a.get(1)?)?) }),
        _ => None,
    }
}

fn ending(v: &Value) -> Option<Reply> {
    let (tag, x) = tagged(v)?;
    Some(match tag.as_str() {
        "written" => Reply::Written { event: text(x)? },
        "dead" => Reply::Dead { event: text(x).filter(|e| !e.is_empty()) },
        "duplicate" => Reply::AlreadyDone,
        "gone" => Reply::Gone,
        "lost" => Reply::Lost { holder: text(x)? },
        "delayed" => Reply::Delayed { due_ms: int(x)? },
        "queued" => Reply::Queued { entry: text(x)? },
        _ => return None,
    })
}

fn leases(v: &Value) -> Option<Reply> {
    let mut out = Vec::new();
    for l in items(v)? {
        let a = items(l)?;
        let (entry, state, by) = (text(a.first()?)?, text(a.get(1)?)?, text(a.get(2)?)?);
        let state = match state.as_str() {
            "held" => LeaseState::Held,
            "taken" => LeaseState::Taken { by },
            "gone" => LeaseState::Gone,
            _ => return None,
        };
        out.push(Lease { entry, state });
    }
    Some(Reply::Leases(out))
}

fn parse(kind: Kind, v: &Value) -> Option<Reply> {
    match kind {
        Kind::Enqueue => match tagged(v)? {
            (t, x) if t == "queued" => Some(Reply::Queued { entry: text(x)? }),
            (t, x) if t == "duplicate" => Some(Reply::Duplicate { of: text(x)? }),
            _ => None,
        },
        Kind::Claim | Kind::Reclaim => claimed(v),
        Kind::Renew => leases(v),
        Kind::Complete | Kind::DeadLetter | Kind::RetryLater | Kind::Requeue => ending(v),
        Kind::Discard => match tagged(v)? {
            (t, _) if t == "discarded" => Some(Reply::Discarded),
            _ => ending(v),
        },
        Kind::Command => Some(Reply::Value(v.clone())),
        Kind::EventsAdd => {
            let a = items(v)?;
            Some(Reply::EventsAdded { added: u64::try_from(int(a.first()?)?).ok()? })
        }
        Kind::ListenerCommit => match tagged(v)? {
            (t, n) if t == "committed" => Some(Reply::Committed { acked: u64::try_from(int(n)?).ok()? }),
            (t, h) if t == "superseded" => Some(Reply::Lock { taken_by: Some(text(h)?) }),
            _ => None,
        },
        Kind::ListenerLock => match tagged(v)? {
            (t, _) if t == "held" => Some(Reply::Lock { taken_by: None }),
            (t, h) if t == "taken" => Some(Reply::Lock { taken_by: Some(text(h)?) }),
            _ => None,
        },
        Kind::Heartbeats => {
            let per_host = |w: &Value| -> Option<Vec<(String, Vec<u8>)>> {
                items(w)?.chunks_exact(2).map(|p| Some((text(&p[0])?, bytes(&p[1])?))).collect()
            };
            Some(Reply::Heartbeats(items(v)?.iter().map(per_host).collect::<Option<_>>()?))
        }
        Kind::Depth => {
            let a = items(v)?;
            let n = |i: usize| a.get(i).and_then(int).and_then(|n| u64::try_from(n).ok());
            Some(Reply::Depth { length: n(0)?, pending: n(1)?, delayed: n(2)? })
        }
        Kind::Promote => {
            let a = items(v)?;
            let next = int(a.get(1)?)?;
            let next_in = u64::try_from(next).ok().map(Duration::from_millis);
            Some(Reply::Promoted { moved: u64::try_from(int(a.first()?)?).ok()?, next_in })
        }
        Kind::DlqRetry => Some(match tagged(v)?.0.as_str() {
            "queued" => Reply::Queued { entry: text(tagged(v)?.1)? },
            "absent" => Reply::DlqRefused(DlqRefusal::Absent),
            "busy" => Reply::DlqRefused(DlqRefusal::Busy),
            "completed" => Reply::DlqRefused(DlqRefusal::Completed),
            _ => return None,
        }),
        Kind::Heartbeat => Some(Reply::HeartbeatAt { ms: int(v)? }),
        Kind::Pause => Some(Reply::PauseFor { ms: int(v)? }),
        Kind::Spend => Some(Reply::Spent { usd: text(v)?.parse().ok()? }),
        Kind::Trim => {
            let a = items(v)?;
            match text(a.first()?)?.as_str() {
                "trimmed" => Some(Reply::Trimmed {
                    count: u64::try_from(int(a.get(1)?)?).ok()?,
                    min_id: text(a.get(2)?)?,
                }),
                "kept" => Some(Reply::Untrimmed { why: text(a.get(1)?)? }),
                _ => None,
            }
        }
        Kind::ForgetConsumer => {
            let (outcome, n) = tagged(v)?;
            Some(Reply::Consumer { pending: int(n)?, outcome })
        }
        Kind::Withdraw => withdrawn(v),
        Kind::Receipt => Some(Reply::Receipt { kept: tagged(v)?.0 == "kept" }),
    }
}

/// Reads the reply of a `kind` call; a server error inside it becomes its [`EngineError`].
pub(crate) fn read(kind: Kind, v: Value) -> Result<Reply, EngineError> {
    if let Value::ServerError(e) = v {
        return Err(e.into());
    }
    parse(kind, &v).ok_or_else(|| bad(kind, &v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_claim_row_reads_into_a_task_to_run() {
        let v = Value::Array(vec![
            b("claimed"),
            b("5-0"),
            Value::Array(vec![
                b("5-0"),
                b("t1"),
                b("claimed"),
                b("{}"),
                b(""),
                Value::Int(2),
                Value::Int(7),
                b("host-a"),
            ]),
            Value::Array(vec![
                b("4-0"),
                b("t0"),
                b("done"),
                b(""),
                b(""),
                Value::Int(0),
                Value::Int(0),
                b(""),
            ]),
        ]);
        let Reply::Claimed { cursor, delivered } = read(Kind::Claim, v).unwrap() else { panic!() };
        assert_eq!(cursor, "5-0");
        let Fate::Run(task) = &delivered[0].fate else { panic!() };
        assert_eq!((task.reclaims, task.state.clone(), task.previous.as_deref()), (2, None, Some("host-a")));
        assert_eq!(delivered[1].fate, Fate::Done);
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_an_error_not_a_guess() {
        assert!(matches!(read(Kind::Complete, b("written")), Err(EngineError::Reply(_))));
        assert!(matches!(read(Kind::Claim, Value::Array(vec![b("what")])), Err(EngineError::Reply(_))));
    }
}
