//! Integration tests: the real binaries (`worker-watcher`, `watcherctl`,
//! `orchestrator-listener`) on temp spools, with the stand-in agent (tests/stand-in/claude),
//! real inotify, processes and signals. One binary; a folder per program or topic, whose
//! mod.rs lists its modules, one line each.

mod support; // helpers: temp spools, the binaries started and awaited, scrapes, mounts, sysctls, Markdown

mod ctl; // watcherctl run as a script would: submit, status, result, dlq
mod host; // the machine under the worker: disk full, inotify limits, network filesystems, clock, logs
mod listener; // orchestrator-listener with real workers: events, batches, health, its scrape target, restarts
mod prometheus; // monitoring as shipped: alert rules, the dashboard, a real Prometheus scraping the daemons
mod redis; // the fleet on a real redis-server: hosts killed or cut off, the engine killed or stalled, failover, migration
mod system; // the programs together: the README's first command, shared exit statuses, odd files
mod worker; // worker-watcher: tasks in, results out; retries, breaker, timeouts, signals, agent faults

mod docs; // the man pages, README and guides held to the code
