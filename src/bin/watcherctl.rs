use std::process::ExitCode;

use clap::Parser;
use worker_watcher::ctl::CtlArgs;

fn main() -> ExitCode {
    ExitCode::from(worker_watcher::ctl::run(&CtlArgs::parse()))
}
