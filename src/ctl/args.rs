//! The command line of `watcherctl`: what the operator typed, with no syscalls. Values that
//! need the configuration (sizes, folders) are checked by the subcommands.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::config::{EnvFileArg, Layers};

/// The operator's and the orchestrator's hand on the worker-watcher spool: submit tasks and
/// wait for them, see the workers' health, read results, handle dead letters, follow events.
#[derive(Debug, Parser)]
#[command(name = "watcherctl", version)]
pub struct CtlArgs {
    /// Root of the spool [env: WATCHER_ROOT] [default: /var/lib/worker-watcher].
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// Env file to read instead of ROOT/.env; repeatable, later files win. `-FILE`: skip it
    /// if missing.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, global = true)]
    pub env_file: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Queue a task for a worker, atomically; print its id (or, with --wait, its result).
    Submit(SubmitArgs),
    /// One row per worker from its heartbeat.
    Status(StatusArgs),
    /// Print the result of a task; exit 0 if it completed, 1 if it failed.
    Result(ResultArgs),
    /// The dead-letter queue of a worker.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The events orchestrator-listener writes for the orchestrator.
    Events(EventsArgs),
    /// Every task of a worker without a result, oldest first: queued, running, waiting, held.
    Tasks(TasksArgs),
    /// Cancel a queued, running or waiting task; wait until it is cancelled.
    Cancel(CancelArgs),
    /// Move a worker's work between the folders and the engine (SPOOL); check the engine.
    #[command(subcommand)]
    Spool(SpoolCommand),
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Move a stopped worker's queue, retry state and dead letters from the folders to the
    /// engine.
    Import { worker: String },
    /// Move a stopped worker's queue, retry state and dead letters from the engine to the
    /// folders.
    Export { worker: String },
    /// The engine's settings, and whether the daemons accept it.
    Check,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The worker to run the task.
    pub worker: String,
    /// What the agent is asked to do; `-` reads it from standard input.
    #[arg(value_name = "DESCRIPTION|-")]
    pub description: String,
    /// The task id [default: generated, UTC time and 8 random hex digits:
    /// 20260328T104512Z-3f9a1c2e].
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Time limit of one attempt, in seconds [default: the worker's TASK_TIMEOUT].
    #[arg(long, value_name = "S")]
    pub timeout: Option<f64>,
    /// Retries after a failed attempt [default: the worker's MAX_RETRIES].
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Metadata carried into the result: KEY=VALUE (a string) or KEY:=JSON; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Block until the result exists, print it, and exit 0 (completed) or 1 (failed).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after S seconds, with exit status 75 [default: wait for ever].
    #[arg(long, value_name = "S", requires = "wait")]
    pub wait_timeout: Option<f64>,
    /// Create the worker's queue if the worker is not known yet.
    #[arg(long, conflicts_with = "pipe")]
    pub create: bool,
    /// Write the task to the worker's pipe (PIPE_INTAKE) instead of its queue folder.
    #[arg(long)]
    pub pipe: bool,
    /// Print JSON: the submitted task's id and file, or with --wait the result file.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Workers to show [default: every worker with a heartbeat or a queue].
    pub workers: Vec<String>,
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if a worker shown is not healthy (stale, stopped, or without a heartbeat).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    pub worker: String,
    pub id: String,
    /// Print the result file as it is.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The dead letters of a worker, oldest first.
    List {
        worker: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter: why, its failures, and the task.
    Show {
        worker: String,
        /// The dead letter's name (as `dlq list` shows it) or its task id.
        id: String,
        /// Print the dead-letter file as it is.
        #[arg(long)]
        json: bool,
    },
    /// Queue a dead-lettered task again, with a fresh attempt count and its history kept.
    #[command(override_usage = "watcherctl dlq retry <WORKER> <ID|--all>")]
    Retry(DlqPick),
    /// Delete dead letters (and the originals kept beside them).
    #[command(override_usage = "watcherctl dlq purge <WORKER> <ID|--all>")]
    Purge(DlqPick),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct DlqPick {
    pub worker: String,
    /// The dead letter's name (as `dlq list` shows it) or its task id.
    pub id: Option<String>,
    /// Every dead letter of the worker.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    pub worker: String,
    /// Print one JSON object: the worker's state and its tasks.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    pub worker: String,
    pub id: String,
    /// Return once the request is made, without waiting for the task's result.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after S seconds, with exit status 75 (the request stays) [default: wait
    /// for ever].
    #[arg(long, value_name = "S", conflicts_with = "no_wait")]
    pub wait_timeout: Option<f64>,
    /// Print one JSON object: the task's id, worker and status.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep printing events as they arrive.
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

impl CtlArgs {
    /// The configuration layers: `--root` and `--env-file` over `env`.
    pub fn layers(&self, env: BTreeMap<String, String>) -> Layers {
        let mut flags = BTreeMap::new();
        if let Some(root) = &self.root {
            flags.insert("WATCHER_ROOT", (root.to_string_lossy().into_owned(), "--root"));
        }
        let env_files = self.env_file.iter().map(|a| EnvFileArg::parse(a)).collect();
        Layers::new(flags, env, env_files)
    }
}
