use std::process::ExitCode;

use clap::Parser;
use worker_watcher::cli::WorkerArgs;
use worker_watcher::log::{Sink, Target};

fn main() -> ExitCode {
    let args = WorkerArgs::parse();
    match worker_watcher::run_worker(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // When stderr is the journal, `<3>` makes the line an error (PRIORITY=3), so
            // `journalctl -p err` shows why the unit failed.
            let stream = std::env::var("JOURNAL_STREAM").ok();
            let prefix = match Sink::detect(Target::Auto, stream.as_deref()) {
                Sink::Journal => "<3>",
                Sink::Stderr => "",
            };
            eprintln!("{prefix}worker-watcher[{}]: {e}", args.name);
            ExitCode::from(e.exit_code())
        }
    }
}
