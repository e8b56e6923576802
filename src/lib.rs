//! worker-watcher: systemd-native daemons that run AI-agent workers from a file spool.
//!
//! The binaries are thin; everything they do is here so tests reach it. The worker daemon is
//! [`run_worker`]; its loop is [`worker`], the folder protocol [`spool`], the agent process
//! [`runner`]. `watcherctl` is [`ctl`]. `orchestrator-listener` is [`listener`].

pub mod agent;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod engine;
pub mod error;
pub mod format;
pub mod http;
pub mod listener;
pub mod log;
pub mod metrics;
pub(crate) mod runner;
pub(crate) mod spool;
pub(crate) mod sys;
pub mod worker;

use crate::config::Config;
use crate::error::Fatal;

/// `worker-watcher NAME …`: loads the configuration, opens the spool, runs the loop until
/// it is stopped. `Ok` is exit status 0.
pub fn run_worker(args: &cli::WorkerArgs) -> Result<(), Fatal> {
    let layers = args.layers(cli::environment());
    let cfg = Config::load(&args.name, &layers)?;
    if args.check_config {
        print!("{}", cfg.report());
        return Ok(());
    }
    let sink = log::Sink::detect(cfg.log_target, layers.env.get("JOURNAL_STREAM").map(String::as_str));
    let log = log::Logger::new(cfg.tuning.log_level, cfg.log_format, sink, &cfg.worker);
    let spool: Box<dyn spool::Spool> = match &cfg.spool {
        None => Box::new(spool::fs::FsSpool::open(&cfg.worker, &cfg.paths)?),
        Some(engine) => Box::new(spool::redis::worker::RedisSpool::open(&cfg.worker, engine, &cfg.paths)?),
    };
    worker::Daemon::new(cfg, layers, log, spool)?.run()
}
