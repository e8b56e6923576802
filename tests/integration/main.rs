//! Integration tests: the real binaries (`worker-watcher`, `watcherctl`,
//! `orchestrator-listener`) on temp spools, with
//! the stand-in agent (tests/stand-in/claude), real inotify, processes and signals.

mod activation;
mod breaker;
mod crash;
mod ctl;
mod hostile;
mod invalid;
mod listener;
mod logging;
mod metrics;
mod pipe;
mod running;
mod scrape;
mod settings;
mod signals;
mod timeouts;
mod util;
