//! The daemons and watcherctl on a real Redis/Valkey engine (SPOOL=redis+unix://…), each test
//! with servers of its own and, where hosts matter, two or more "hosts" (spool roots and
//! SPOOL_CONSUMERs of their own) sharing one: issue 16's acceptance tests.

mod clock; // hosts whose clocks are an hour apart (faketime): retries due on the engine's clock
mod control; // watcherctl tasks and cancel against a worker on another host, through the engine
mod engine; // the engine unreachable, unsafe, stalled past the lease among 10 hosts, killed under load, full
mod failover; // Sentinel on loopback: forced failover and kill -9 of the primary under submits; no acknowledged task lost
mod hosts; // a host killed with kill -9 mid-task, a host frozen past its lease, a restart, a shared rate limit
mod listener; // the orchestrator-listener killed with kill -9 under load: one event per result
mod migrate; // spool import/export: queue, retry state and dead letters moved both ways, twice; spool check
