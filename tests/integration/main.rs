//! Integration tests: the real `worker-watcher` binary on temp spools, with the stand-in agent
//! (tests/stand-in/claude), real inotify, processes and signals.

mod activation;
mod breaker;
mod crash;
mod hostile;
mod invalid;
mod metrics;
mod running;
mod scrape;
mod settings;
mod signals;
mod timeouts;
mod util;
