//! Integration tests: the real binaries (`worker-watcher`, `watcherctl`,
//! `orchestrator-listener`) on temp spools, with
//! the stand-in agent (tests/stand-in/claude), real inotify, processes and signals.

mod activation;
mod agent_aware;
mod breaker;
mod crash;
mod ctl;
mod diskfull;
mod docs;
mod envfile;
mod escape;
mod hostile;
mod inotify;
mod invalid;
mod listener;
mod logging;
mod metrics;
mod netfs;
mod pipe;
mod running;
mod scrape;
mod settings;
mod signals;
mod sys;
mod timeouts;
mod util;
