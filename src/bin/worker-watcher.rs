use std::process::ExitCode;

use clap::Parser;
use worker_watcher::cli::WorkerArgs;

fn main() -> ExitCode {
    let args = WorkerArgs::parse();
    match worker_watcher::run_worker(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker-watcher[{}]: {e}", args.name);
            ExitCode::from(e.exit_code())
        }
    }
}
