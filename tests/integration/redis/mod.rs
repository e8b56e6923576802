//! The daemons and watcherctl on a real Redis/Valkey engine (SPOOL=redis…), each test with
//! servers of its own: issue 16's acceptance tests.

mod failover;
mod migrate; // spool import/export: queue, retry state and dead letters moved both ways, twice; spool check // Sentinel on loopback: forced failover and kill -9 of the primary under submits; no acknowledged task lost
