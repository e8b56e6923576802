//! Taking results: each new result is counted, announced (`task_completed` /
//! `task_failed`) and counted in its batch, once; the spool hands out each result once and
//! says which ones were taken before. A turn takes at most [`CHUNK`] results, a few from each
//! worker in turn, so a backlog never delays a scrape, a heartbeat's verdict or a live result
//! for long.

use serde_json::json;

use super::batches::{BatchOutcome, Forgotten, Open, Tally};
use super::events::{self, Event};
use super::Listener;
use crate::format::summary::{ResultReading, Summary};
use crate::log::ids;
use crate::spool::listener::Delivered;

/// Results taken in one loop turn, at most.
pub const CHUNK: usize = 512;

impl Listener {
    /// Takes up to [`CHUNK`] pending results, round robin over the workers; none while
    /// events wait to be written (nothing is taken that could not be announced).
    pub(super) fn take_results(&mut self) {
        if !self.staged.is_empty() {
            return;
        }
        for result in self.spool.results(CHUNK, self.cfg.tuning.backfill) {
            self.take(result);
        }
        self.more_work = !self.spool.backlog().is_empty();
        if !self.more_work && !self.caught_up {
            self.caught_up = true;
            self.log.info(
                "caught up: every folder scanned, every result found at start-up taken",
                &[("DURATION_MS", &self.started.elapsed().as_millis())],
            );
            trim_heap();
        }
    }

    fn take(&mut self, d: Delivered) {
        let worker = d.worker.as_str();
        let ws = self.state.workers.entry(worker.to_string()).or_default();
        match d.reading {
            _ if d.again => self.log.debug(
                "a result already taken changed (touched or edited); not counted or announced again",
                &[("WORKER", &worker), ("FILE", &d.at)],
            ),
            ResultReading::Unreadable(why) => {
                ws.counts.unreadable += 1;
                self.log.warn(
                    "not a result; counted as unreadable",
                    &[
                        ("MESSAGE_ID", &ids::RESULT_UNREADABLE),
                        ("WORKER", &worker),
                        ("FILE", &d.at),
                        ("ERROR", &why),
                    ],
                );
            }
            ResultReading::Result(s) => {
                ws.counts.record(&s);
                let (progress, completed) = match &s.batch {
                    Some((batch, size)) => {
                        self.count_in_batch(worker, &s, batch, *size, d.written_ns, d.announce)
                    }
                    None => (None, None),
                };
                // The task's event before its batch's: they are written in order.
                if d.announce {
                    let event = events::task(worker, &s, d.written_ns, &d.at);
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
        self.state_dirty = true;
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
            BatchOutcome::Repeated => (None, None),
            BatchOutcome::Counted { tally, size } => (Some(progress(tally, size)), None),
            BatchOutcome::Completed(done) if announce => {
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
            BatchOutcome::Completed(done) => (Some(progress(done.tally, done.size)), None),
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
