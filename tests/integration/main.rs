//! Integration tests: the real binaries (`worker-watcher`, `watcherctl`,
//! `orchestrator-listener`) on temp spools, with
//! the stand-in agent (tests/stand-in/claude), real inotify, processes and signals.

mod activation;
mod agent_aware;
mod breaker;
mod clock;
mod crash;
mod ctl;
mod diskfull;
mod docs;
mod docs_commands;
mod docs_markdown;
mod envfile;
mod escape;
mod exits;
mod first_run;
mod hostile;
mod inotify;
mod inplace;
mod invalid;
mod listener;
mod logging;
mod markdown;
mod metrics;
mod netfs;
mod oddfiles;
mod outage;
mod pipe;
mod prometheus;
mod running;
mod scrape;
mod settings;
mod signals;
mod sys;
mod timeouts;
mod util;
