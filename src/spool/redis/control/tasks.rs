//! `watcherctl tasks` and `watcherctl cancel` on the engine: every task of a worker without a
//! result (its queue's entries, its held receipts, its retries waiting), and requests to
//! cancel one, kept in the worker's cancel hash and rung on its bell stream, which every host
//! of the worker follows (nothing is signalled across hosts).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;

use super::RedisControl;
use crate::format::records::Receipt;
use crate::format::task::{State, STATE_KEY};
use crate::spool::control::{Listed, Pending};
use crate::spool::error::Error;
use crate::spool::redis::values;

/// Bell entries kept: only their arrival matters (the requests are in the hash).
const BELL_KEPT: usize = 1000;

fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A held task's state: the one saved, else the `_watcher` it was submitted with.
fn state_of(saved: Option<Vec<u8>>, doc: Option<Vec<u8>>) -> Option<State> {
    if let Some(s) = saved.filter(|s| !s.is_empty()) {
        return serde_json::from_slice(&s).ok();
    }
    let mut doc: serde_json::Value = serde_json::from_slice(&doc?).ok()?;
    serde_json::from_value(doc.get_mut(STATE_KEY)?.take()).ok()
}

impl RedisControl {
    fn texts(&self, cmd: &mut redis::Cmd, at: &str) -> Result<Vec<String>, Error> {
        let v = self.query("cannot read", at, cmd)?;
        Ok(values::items(&v).unwrap_or_default().iter().filter_map(values::text).collect())
    }

    /// Ids of the tasks that may be pending: queue entries (waiting or held), receipts, and
    /// retries waiting with their due time (server ms).
    fn task_ids(&self, worker: &str) -> Result<(BTreeSet<String>, HashMap<String, i64>), Error> {
        let k = self.keys(worker);
        let at = self.at(&k.queue());
        let v = self.query("cannot read", &at, redis::cmd("XRANGE").arg(k.queue()).arg("-").arg("+"))?;
        let mut ids: BTreeSet<String> =
            values::entries(&v).unwrap_or_default().iter().filter_map(|e| e.get("id")).collect();
        ids.extend(self.texts(redis::cmd("HKEYS").arg(k.inflight()), &at)?);
        let due = self.texts(redis::cmd("ZRANGE").arg(k.delayed()).arg(0).arg(-1).arg("WITHSCORES"), &at)?;
        let due: HashMap<String, i64> = due
            .chunks(2)
            .filter_map(|p| Some((p.first()?.clone(), p.get(1)?.parse::<f64>().ok()? as i64)))
            .collect();
        ids.extend(due.keys().cloned());
        Ok((ids, due))
    }

    pub(super) fn list_tasks(&self, worker: &str) -> Result<Vec<Listed>, Error> {
        let k = self.keys(worker);
        let (ids, due) = self.task_ids(worker)?;
        let requested: BTreeSet<String> =
            self.texts(redis::cmd("HKEYS").arg(k.cancels()), "")?.into_iter().collect();
        let mut out = Vec::new();
        for id in ids {
            let key = k.task(&id);
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(&key).arg(&["phase", "state", "doc", "queued_at", "receipt"][..]);
            let v = self.query("cannot read", &self.at(&key), &mut cmd)?;
            let f = values::items(&v).unwrap_or_default();
            let field = |i: usize| f.get(i).and_then(values::bytes);
            let Some(phase) = f.first().and_then(values::text) else { continue };
            let queued_at = at_ms(f.get(3).and_then(values::int).unwrap_or(0));
            let (pending, state, receipt) = match phase.as_str() {
                "queued" => (Pending::Queued, None, None),
                _ => {
                    let mut state = state_of(field(1), field(2));
                    if let (Some(s), Some(ms)) = (state.as_mut(), due.get(&id)) {
                        s.retry_at = Some(*ms as f64 / 1000.0);
                    }
                    let receipt = field(4).and_then(|b| serde_json::from_slice::<Receipt>(&b).ok());
                    (Pending::InFlight, state, receipt)
                }
            };
            let cancel_requested = requested.contains(&id);
            out.push(Listed { id, pending, queued_at, state, receipt, cancel_requested });
        }
        out.sort_by(|a, b| a.queued_at.cmp(&b.queued_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The request kept in the worker's cancel hash (one per task: the first stands), and
    /// its bell rung, in one transaction.
    pub(super) fn cancel_request(&mut self, worker: &str, id: &str, by: &str) -> Result<(), Error> {
        let k = self.keys(worker);
        let at = self.at(&k.cancels());
        let request = serde_json::json!({
            "task_id": id,
            "by": by,
            "requested_at": crate::sys::clock::rfc3339_now(),
        });
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSETNX")
            .arg(k.cancels())
            .arg(id)
            .arg(request.to_string())
            .cmd("XADD")
            .arg(k.cancel_bell())
            .arg("MAXLEN")
            .arg("~")
            .arg(BELL_KEPT)
            .arg("*")
            .arg("id")
            .arg(id);
        let mut engine = self.engine.borrow_mut();
        p.query::<Value>(engine.connection())
            .map_err(|e| Error::new("cannot write a request in", &at, super::cause(e.into())))?;
        drop(engine);
        self.replicated(&at)
    }
}
