//! The formats of the spool's files, shared by every program and backend: a task as producers
//! write it (and the state the worker keeps in it), and the records the daemons write
//! (results, dead letters, receipts, heartbeats). See worker-watcher-tasks(5).

pub(crate) mod fnv;
pub(crate) mod records;
pub(crate) mod summary;
pub mod task;

#[cfg(test)]
mod round_trip;
