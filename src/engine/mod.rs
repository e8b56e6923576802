//! Engines a spool can run on besides the folders: today Redis and Valkey Streams, for fleets
//! whose workers run on many hosts (issue 16, DESIGN.md §10).
//!
//! This is the engine layer only: keys, atomic scripts, the connection, the I/O thread and the
//! checks an engine must pass. The daemons reach it through their backend interfaces once those
//! exist; nothing here knows about the worker's loop.

pub mod redis;
