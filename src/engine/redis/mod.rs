//! The Redis/Valkey Streams engine: the building blocks of the spool backend for fleets on
//! many hosts (issue 16; docs/redis.md is the reference of keys, scripts and rules).
//!
//! - [`keys`]: the key schema, one owner for every name;
//! - [`scripts`] and [`ops`]: one Lua script per change of state, every check before the
//!   first write, built as [`ops::Call`]s and read back as [`reply::Reply`]s;
//! - [`client`]: one blocking connection, pipelined batches, replica waits;
//! - [`io`]: the I/O thread that keeps the loop off the network;
//! - [`lease`]: when a host may reclaim other hosts' entries;
//! - [`check`]: refusing engines that could lose or evict tasks;
//! - [`settings`]: `SPOOL` and the other settings, parsed.

pub mod check;
pub mod client;
pub mod error;
pub mod io;
pub mod keys;
pub mod lease;
pub mod ops;
pub mod reply;
mod scripts;
pub mod settings;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
