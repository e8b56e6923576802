//! Batches: results whose `metadata.batch` names one are counted per batch, across workers;
//! a batch with a `metadata.batch_size` is complete when that many distinct tasks have a
//! result, and `batch_completed` is written once, with the counts by status and by worker.
//!
//! A batch without a size cannot be known complete: its results are counted (each task
//! event carries the batch's running counts) and no `batch_completed` is written.
//!
//! Bounded: at most [`MAX_OPEN`] open batches and [`MAX_MEMBERS`] task ids among them (a
//! batch forgets the least recently updated batch beyond either, with a warning); completed
//! batches are remembered by a hash of their name, the last [`MAX_DONE`] of them, so a late
//! result (a task retried after its batch completed) never completes a batch twice.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::format::fnv::fnv1a;
use crate::format::records::COMPLETED;

pub const MAX_OPEN: usize = 1024;
pub const MAX_MEMBERS: usize = 65_536;
pub const MAX_DONE: usize = 4096;

/// Results of a batch by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub completed: u64,
    pub failed: u64,
}

impl Tally {
    fn add(&mut self, status: &str) {
        if status == COMPLETED {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.completed + self.failed
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Open {
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub tally: Tally,
    #[serde(default)]
    pub by_worker: BTreeMap<String, Tally>,
    /// Hashes of `worker/task_id` counted, so a task's second result is not counted again.
    #[serde(default)]
    pub members: HashSet<u64>,
    /// When it was last updated, in the order of updates (for forgetting the oldest).
    #[serde(default)]
    pub touched: u64,
    #[serde(default)]
    pub first_result_at: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Batches {
    #[serde(default)]
    pub open: BTreeMap<String, Open>,
    #[serde(default)]
    pub done: VecDeque<u64>,
    /// `done` as a set, for the lookup each result makes; rebuilt from `done` when empty.
    #[serde(skip)]
    done_set: HashSet<u64>,
    #[serde(default)]
    clock: u64,
}

impl PartialEq for Batches {
    fn eq(&self, other: &Batches) -> bool {
        self.open == other.open && self.done == other.done && self.clock == other.clock
    }
}

/// What a result did to its batch.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchOutcome {
    /// Counted; the batch is still open, with these counts so far.
    Counted { tally: Tally, size: Option<u64> },
    /// Counted, and this result completed the batch.
    Completed(Open),
    /// The task was counted before, or its batch completed before: not counted again.
    Repeated,
}

/// A batch forgotten to stay within the bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Forgotten {
    pub name: String,
    pub batch: Open,
}

impl Batches {
    /// Counts the result of `worker`'s task `task_id` in `name` (of `size` tasks, if the
    /// result says). `at`: the result's time, for the batch's first result.
    pub fn record(
        &mut self,
        name: &str,
        size: Option<u64>,
        worker: &str,
        task_id: &str,
        status: &str,
        at: &str,
    ) -> (BatchOutcome, Vec<Forgotten>) {
        let hash = fnv1a(&[name]);
        if self.done_set.len() != self.done.len() {
            self.done_set = self.done.iter().copied().collect();
        }
        if self.done_set.contains(&hash) {
            return (BatchOutcome::Repeated, Vec::new());
        }
        self.clock += 1;
        let member = fnv1a(&[worker, task_id]);
        let batch = self.open.entry(name.to_string()).or_default();
        if !batch.members.insert(member) {
            return (BatchOutcome::Repeated, Vec::new());
        }
        batch.touched = self.clock;
        batch.size = batch.size.or(size);
        batch.first_result_at.get_or_insert_with(|| at.to_string());
        batch.tally.add(status);
        batch.by_worker.entry(worker.to_string()).or_default().add(status);
        let complete = batch.size.is_some_and(|n| batch.tally.total() >= n);
        if complete {
            let done = self.open.remove(name).unwrap_or_default();
            self.done.push_back(hash);
            self.done_set.insert(hash);
            while self.done.len() > MAX_DONE {
                if let Some(old) = self.done.pop_front() {
                    self.done_set.remove(&old);
                }
            }
            return (BatchOutcome::Completed(done), Vec::new());
        }
        let counted = BatchOutcome::Counted { tally: batch.tally, size: batch.size };
        (counted, self.bound(name))
    }

    /// Forgets the least recently updated batches (never `keep`) beyond the bounds.
    fn bound(&mut self, keep: &str) -> Vec<Forgotten> {
        let mut forgotten = Vec::new();
        loop {
            let members: usize = self.open.values().map(|b| b.members.len()).sum();
            if self.open.len() <= MAX_OPEN && members <= MAX_MEMBERS {
                return forgotten;
            }
            let oldest = self
                .open
                .iter()
                .filter(|(n, _)| n.as_str() != keep)
                .min_by_key(|(_, b)| b.touched)
                .map(|(n, _)| n.clone());
            let Some(name) = oldest else {
                return forgotten;
            };
            if let Some(batch) = self.open.remove(&name) {
                forgotten.push(Forgotten { name, batch });
            }
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sized_batch_completes_once_with_counts() {
        let mut b = Batches::default();
        let (o, _) = b.record("b1", Some(3), "marie", "t1", "completed", "t");
        assert!(matches!(o, BatchOutcome::Counted { tally, .. } if tally.total() == 1));
        b.record("b1", None, "anga", "t2", "failed", "t");
        let (o, _) = b.record("b1", Some(3), "marie", "t1", "completed", "t");
        assert_eq!(o, BatchOutcome::Repeated, "a second result of one task");
        let (o, _) = b.record("b1", Some(3), "anga", "t3", "completed", "t");
        let BatchOutcome::Completed(done) = o else { panic!("not completed: {o:?}") };
        assert_eq!(done.tally, Tally { completed: 2, failed: 1 });
        assert_eq!(done.by_worker["anga"], Tally { completed: 1, failed: 1 });
        assert_eq!(b.record("b1", Some(3), "anga", "t4", "completed", "t").0, BatchOutcome::Repeated);
        assert_eq!(b.open_count(), 0);
    }

    #[test]
    fn an_unsized_batch_is_counted_and_never_completes() {
        let mut b = Batches::default();
        for i in 0..5 {
            let (o, _) = b.record("u", None, "marie", &format!("t{i}"), "completed", "t");
            assert!(matches!(o, BatchOutcome::Counted { .. }));
        }
        assert_eq!(b.open["u"].tally.completed, 5);
    }

    #[test]
    fn open_batches_are_bounded_by_forgetting_the_oldest() {
        let mut b = Batches::default();
        let mut forgotten = Vec::new();
        for i in 0..MAX_OPEN + 3 {
            let (_, f) = b.record(&format!("b{i}"), Some(10), "marie", "t", "completed", "t");
            forgotten.extend(f);
        }
        assert_eq!(b.open_count(), MAX_OPEN);
        let names: Vec<&str> = forgotten.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["b0", "b1", "b2"]);
    }

    #[test]
    fn batches_survive_their_json() {
        let mut b = Batches::default();
        b.record("b1", Some(2), "marie", "t1", "completed", "t");
        b.record("b0", Some(1), "marie", "t1", "completed", "t");
        let back: Batches = serde_json::from_str(&serde_json::to_string(&b).expect("json")).expect("parse");
        assert_eq!(back, b);
        let mut back = back;
        assert!(matches!(
            back.record("b1", None, "marie", "t2", "failed", "t").0,
            BatchOutcome::Completed(_)
        ));
    }
}
