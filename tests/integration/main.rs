//! Integration tests: the real `worker-watcher` binary on temp spools, with the stand-in agent
//! (tests/stand-in/claude), real inotify, processes and signals.

mod breaker;
mod crash;
mod docs;
mod invalid;
mod logging;
mod running;
mod settings;
mod signals;
mod timeouts;
mod util;
