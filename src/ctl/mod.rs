//! `watcherctl`: the operator's and the orchestrator's hand on the spool. It reads and writes
//! the spool through its backend interface ([`crate::spool::control::ControlSpool`]), with
//! the same types as the daemons ([`crate::format::records`], [`crate::format::task`]); it
//! talks to no daemon (except by writing to a worker's pipe), so it works whether or not they
//! run.
//!
//! One module per subcommand family; [`exit`] lists the exit statuses scripts rely on.

pub(crate) mod args;
mod cancel;
mod dlq;
mod events;
pub mod exit;
mod output;
mod result;
mod retry;
mod spool;
mod status;
mod submit;
mod tasks;

pub use args::CtlArgs;
pub use submit::{new_id, PIPE_ATOMIC_BYTES};

use args::{Command, DlqCommand, SpoolCommand};
use exit::{CtlError, CtlResult, CONFIG, NO_WORKER, USAGE};

use crate::config::{worker_name, Config};
use crate::spool::control::{ControlSpool, Place};
use crate::spool::fs::control::FsControl;
use crate::spool::redis::control::RedisControl;
use crate::spool::OpenError;

/// Runs a command line; returns the exit status, with any message already on stderr.
pub fn run(args: &CtlArgs) -> u8 {
    match dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("watcherctl: {}", e.message);
            }
            e.code
        }
    }
}

fn dispatch(args: &CtlArgs) -> CtlResult {
    let cfg = Config::load_shared(&args.layers(crate::cli::environment()))
        .map_err(|e| CtlError::new(CONFIG, e.to_string()))?;
    // The migration and the check open their sides themselves.
    match &args.command {
        Command::Spool(SpoolCommand::Import { worker }) => return spool::migrate(&cfg, worker, true),
        Command::Spool(SpoolCommand::Export { worker }) => return spool::migrate(&cfg, worker, false),
        Command::Spool(SpoolCommand::Check) => return spool::check(&cfg),
        _ => {}
    }
    let mut spool = open(&cfg)?;
    let spool: &mut dyn ControlSpool = spool.as_mut();
    match &args.command {
        Command::Submit(a) => submit::submit(spool, &cfg, a),
        Command::Status(a) => status::status(spool, a),
        Command::Result(a) => result::result(spool, a),
        Command::Dlq(DlqCommand::List { worker, json }) => dlq::list(spool, worker, *json),
        Command::Dlq(DlqCommand::Show { worker, id, json }) => dlq::show(spool, worker, id, *json),
        Command::Dlq(DlqCommand::Retry(p)) => retry::retry(spool, p, cfg.tuning.max_task_bytes),
        Command::Dlq(DlqCommand::Purge(p)) => dlq::purge(spool, p),
        Command::Events(a) => events::events(spool, a),
        Command::Tasks(a) => tasks::tasks(spool, a),
        Command::Cancel(a) => cancel::cancel(spool, a),
        Command::Spool(_) => Ok(exit::OK),
    }
}

/// The spool SPOOL names: the folders, or an engine (unreachable: exit 74; unsafe: 78).
fn open(cfg: &Config) -> Result<Box<dyn ControlSpool>, CtlError> {
    let Some(engine) = &cfg.spool else {
        return Ok(Box::new(FsControl::new(cfg.paths.clone())));
    };
    match RedisControl::open(engine) {
        Ok(s) => Ok(Box::new(s)),
        Err(OpenError::Config(m)) => Err(CtlError::new(CONFIG, m)),
        Err(e) => Err(CtlError::new(exit::IO, e.to_string())),
    }
}

/// Refuses a bad worker name (exit 2).
fn check_name(worker: &str) -> Result<(), CtlError> {
    worker_name::check(worker).map_err(|e| CtlError::new(USAGE, e))
}

/// Refuses a worker the spool has nothing of (exit 69).
fn require_known(spool: &dyn ControlSpool, worker: &str) -> Result<(), CtlError> {
    check_name(worker)?;
    match spool.known(worker).any() {
        true => Ok(()),
        false => Err(no_such_worker(spool, worker)),
    }
}

fn no_such_worker(spool: &dyn ControlSpool, worker: &str) -> CtlError {
    CtlError::new(
        NO_WORKER,
        format!(
            "no worker {worker:?}: it has no queue ({}) and no heartbeat; check the name, or use `submit --create` to make its queue",
            spool.locate(Place::Queue(worker))
        ),
    )
}
