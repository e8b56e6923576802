//! `watcherctl`: the operator's and the orchestrator's hand on the spool. It reads and writes
//! the same files as the daemons, through the same types ([`crate::format::records`],
//! [`crate::format::task`]) and the same durable writes ([`crate::sys::durable`]); it talks to no daemon
//! (except by writing to a worker's pipe), so it works whether or not they run.
//!
//! One module per subcommand family; [`exit`] lists the exit statuses scripts rely on.

pub mod args;
mod dlq;
mod events;
pub mod exit;
mod folders;
mod output;
mod result;
mod retry;
mod status;
mod submit;
mod wait;

pub use args::CtlArgs;
pub use submit::{new_id, PIPE_ATOMIC_BYTES};

use args::{Command, DlqCommand};
use exit::{CtlError, CtlResult, CONFIG};

use crate::config::Config;

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
    let spool = folders::Spool { paths: cfg.paths.clone() };
    match &args.command {
        Command::Submit(a) => submit::submit(&spool, &cfg, a),
        Command::Status(a) => status::status(&spool, a),
        Command::Result(a) => result::result(&spool, a),
        Command::Dlq(DlqCommand::List { worker, json }) => dlq::list(&spool, worker, *json),
        Command::Dlq(DlqCommand::Show { worker, id, json }) => dlq::show(&spool, worker, id, *json),
        Command::Dlq(DlqCommand::Retry(p)) => retry::retry(&spool, p, cfg.tuning.max_task_bytes),
        Command::Dlq(DlqCommand::Purge(p)) => dlq::purge(&spool, p),
        Command::Events(a) => events::events(&spool, a),
    }
}
