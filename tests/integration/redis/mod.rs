//! The daemons and watcherctl on a real Redis/Valkey engine (SPOOL=redis…), each test with
//! servers of its own: issue 16's acceptance tests.

mod migrate; // spool import/export: queue, retry state and dead letters moved both ways, twice; spool check
