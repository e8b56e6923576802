use std::process::ExitCode;

use clap::Parser;
use worker_watcher::cli::ListenerArgs;
use worker_watcher::log::{Sink, Target};

fn main() -> ExitCode {
    let args = ListenerArgs::parse();
    match worker_watcher::listener::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // When stderr is the journal, `<3>` makes the line an error (PRIORITY=3).
            let stream = std::env::var("JOURNAL_STREAM").ok();
            let prefix = match Sink::detect(Target::Auto, stream.as_deref()) {
                Sink::Journal => "<3>",
                Sink::Stderr => "",
            };
            eprintln!("{prefix}orchestrator-listener: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
