//! Taking results: each new result file is read once, counted, announced
//! (`task_completed` / `task_failed`) and counted in its batch, and its key recorded in the
//! worker's cursor. A turn takes at most [`CHUNK`] results, a few from each worker in turn,
//! so a backlog never delays a scrape, a heartbeat's verdict or a live result for long.

use serde_json::json;

use super::batches::{Forgotten, Open, Outcome, Tally};
use super::cursor::Key;
use super::events::{self, Event};
use super::summary::{self, Reading, Summary};
use super::taken;
use super::Listener;
use crate::log::ids;

/// Results taken in one loop turn, at most.
pub const CHUNK: usize = 512;
/// Results of one worker taken before the next worker's turn.
const PER_WORKER: usize = 32;

impl Listener {
    /// Takes up to [`CHUNK`] pending results, round robin over the workers; none while
    /// events wait to be written (nothing is taken that could not be announced).
    pub(super) fn take_results(&mut self) {
        if !self.staged.is_empty() {
            return;
        }
        let mut budget = CHUNK;
        while budget > 0 {
            let names: Vec<String> =
                self.workers.iter().filter(|(_, l)| !l.pending.is_empty()).map(|(n, _)| n.clone()).collect();
            if names.is_empty() {
                break;
            }
            for name in names {
                for _ in 0..PER_WORKER.min(budget) {
                    let Some(key) = self.workers.get_mut(&name).and_then(|l| l.pending.pop_first()) else {
                        break;
                    };
                    self.take(&name, key);
                    budget -= 1;
                }
            }
        }
        self.more_work = !self.to_scan.is_empty() || self.workers.values().any(|l| !l.pending.is_empty());
        if !self.more_work && !self.caught_up {
            self.caught_up = true;
            self.log.info(
                "caught up: every folder scanned, every result found at start-up taken",
                &[("DURATION_MS", &self.started.elapsed().as_millis())],
            );
            trim_heap();
        }
    }

    fn take(&mut self, worker: &str, key: Key) {
        let path = self.cfg.paths.results.join(worker).join(&key.1);
        let stem = key.1.strip_suffix(".json").unwrap_or(&key.1).to_string();
        let reading = summary::read(&path, &stem);
        let again = self.taken_before(worker, &key.1, &reading);
        let ws = self.state.workers.entry(worker.to_string()).or_default();
        let announce = ws.cursor.announces(&key);
        match reading {
            Reading::Gone => {}
            _ if again => self.log.debug(
                "a result already taken changed (touched or edited); not counted or announced again",
                &[("WORKER", &worker), ("FILE", &path.display())],
            ),
            Reading::Unreadable(why) => {
                ws.counts.unreadable += 1;
                self.log.warn(
                    "not a result; counted as unreadable",
                    &[
                        ("MESSAGE_ID", &ids::RESULT_UNREADABLE),
                        ("WORKER", &worker),
                        ("FILE", &path.display()),
                        ("ERROR", &why),
                    ],
                );
            }
            Reading::Result(s) => {
                ws.counts.record(&s);
                let (progress, completed) = match &s.batch {
                    Some((batch, size)) => self.count_in_batch(worker, &s, batch, *size, key.0, announce),
                    None => (None, None),
                };
                // The task's event before its batch's: they are renamed into place in order.
                if announce {
                    let event = events::task(worker, &s, key.0, &path.to_string_lossy());
                    self.stage(match progress {
                        Some(p) => event.with("batch_progress", p),
                        None => event,
                    });
                }
                if let Some(done) = completed {
                    self.stage(done);
                }
            }
        }
        let live = self.workers.get_mut(worker);
        let lowest = live.as_ref().and_then(|l| l.pending.first()).map(|k| k.0);
        let drained = lowest.is_none();
        if let Some(ws) = self.state.workers.get_mut(worker) {
            ws.cursor.take(key, lowest);
            if drained {
                ws.cursor.quiet_before_ns = None;
            }
        }
        self.state_dirty = true;
    }

    /// Whether the result `name` of `worker`, as read, was taken before (its file was touched,
    /// edited or copied over since); if not, it is recorded as taken now.
    fn taken_before(&mut self, worker: &str, name: &str, reading: &Reading) -> bool {
        let generation = match reading {
            Reading::Result(s) => taken::generation(s.finished_at.as_deref().unwrap_or("")),
            Reading::Unreadable(_) => taken::generation(taken::UNREADABLE),
            Reading::Gone => return false,
        };
        let ledger = self.taken.entry(worker.to_string()).or_default();
        if ledger.has(name, generation) {
            return true;
        }
        ledger.take(name, generation);
        false
    }

    /// Counts `s` in its batch. Returns the batch's progress for the task's event, and
    /// `batch_completed` when this result completes it (and is announced).
    fn count_in_batch(
        &mut self,
        worker: &str,
        s: &Summary,
        batch: &str,
        size: Option<u64>,
        mtime_ns: i64,
        announce: bool,
    ) -> (Option<serde_json::Value>, Option<Event>) {
        let at = crate::sys::clock::rfc3339(events::time_of_ns(mtime_ns));
        let (outcome, forgotten) = self.state.batches.record(batch, size, worker, &s.task_id, s.status, &at);
        for f in forgotten {
            self.forgot(f);
        }
        match outcome {
            Outcome::Repeated => (None, None),
            Outcome::Counted { tally, size } => (Some(progress(tally, size)), None),
            Outcome::Completed(done) if announce => {
                self.log.info(
                    "batch completed",
                    &[
                        ("MESSAGE_ID", &ids::BATCH_COMPLETED),
                        ("BATCH", &batch),
                        ("COMPLETED", &done.tally.completed),
                        ("FAILED", &done.tally.failed),
                    ],
                );
                (Some(progress(done.tally, done.size)), Some(batch_completed(batch, &done, mtime_ns)))
            }
            Outcome::Completed(done) => (Some(progress(done.tally, done.size)), None),
        }
    }

    fn forgot(&self, f: Forgotten) {
        let fields: [crate::log::Field; 3] =
            [("BATCH", &f.name), ("COUNTED", &f.batch.tally.total()), ("SIZE", &f.batch.size.unwrap_or(0))];
        let what = "too many open batches: the least recently updated one is forgotten (a later result starts it again)";
        match f.batch.size {
            Some(_) => self.log.warn(what, &fields),
            None => self.log.info(what, &fields),
        }
    }

    /// Adds an event to the turn's writes.
    pub(super) fn stage(&mut self, event: Event) {
        self.staged.push(event);
    }
}

fn progress(tally: Tally, size: Option<u64>) -> serde_json::Value {
    json!({"completed": tally.completed, "failed": tally.failed, "size": size})
}

fn batch_completed(name: &str, b: &Open, mtime_ns: i64) -> Event {
    let workers: serde_json::Map<String, serde_json::Value> = b
        .by_worker
        .iter()
        .map(|(w, t)| (w.clone(), json!({"completed": t.completed, "failed": t.failed})))
        .collect();
    // A nanosecond after the result that completed it, so that it sorts after that task's event.
    Event::new(events::BATCH_COMPLETED, None, events::time_of_ns(mtime_ns.saturating_add(1)), name)
        .with("batch", json!(name))
        .with("size", json!(b.size))
        .with("completed", json!(b.tally.completed))
        .with("failed", json!(b.tally.failed))
        .with("workers", serde_json::Value::Object(workers))
        .with("first_result_at", json!(b.first_result_at))
}

/// Gives back to the system the memory of a large start-up backlog.
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
