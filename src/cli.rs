//! The command line of `worker-watcher`. Values are kept as text here and validated with
//! every other setting, so a bad flag gets the same one-line error and exit status 78.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{EnvFileArg, Layers};

/// Runs one AI-agent worker from its spool queue: claims each task file, runs the agent,
/// writes its result.
#[derive(Debug, Parser)]
#[command(name = "worker-watcher", version, about, long_about = None)]
pub struct WorkerArgs {
    /// The worker's name: its queue is ROOT/tasks/NAME/.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Root of the spool [env: WATCHER_ROOT] [default: /var/lib/worker-watcher].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Agent runs at once [env: MAX_CONCURRENT_TASKS] [default: 3].
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<String>,
    /// Env file to read instead of ROOT/.env, as systemd's EnvironmentFile= reads it;
    /// repeatable, later files win; read again on SIGHUP. `-FILE`: skip it if missing.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub env_file: Vec<String>,
    /// Print the effective configuration, with where each value came from, and exit.
    #[arg(long)]
    pub check_config: bool,
}

impl WorkerArgs {
    /// The configuration layers: these flags over `env` (the process environment).
    pub fn layers(&self, env: BTreeMap<String, String>) -> Layers {
        let mut flags = BTreeMap::new();
        if let Some(root) = &self.root {
            flags.insert("WATCHER_ROOT", (root.to_string_lossy().into_owned(), "--root"));
        }
        if let Some(n) = &self.max_concurrent {
            flags.insert("MAX_CONCURRENT_TASKS", (n.clone(), "--max-concurrent"));
        }
        let env_files = self.env_file.iter().map(|a| EnvFileArg::parse(a)).collect();
        Layers::new(flags, env, env_files)
    }
}

/// The process environment, as far as it is text.
pub fn environment() -> BTreeMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

/// Aggregates the results and heartbeats of every worker of a spool: writes events for the
/// orchestrator, reports unhealthy workers, serves the host's metrics.
#[derive(Debug, Parser)]
#[command(name = "orchestrator-listener", version, about, long_about = None)]
pub struct ListenerArgs {
    /// Root of the spool [env: WATCHER_ROOT] [default: /var/lib/worker-watcher].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Workers to follow, separated by commas [env: WORKERS] [default: every worker found].
    #[arg(long, value_name = "LIST")]
    pub workers: Option<String>,
    /// Env file to read instead of ROOT/.env, as systemd's EnvironmentFile= reads it;
    /// repeatable, later files win; read again on SIGHUP. `-FILE`: skip it if missing.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub env_file: Vec<String>,
    /// Print the effective configuration, with where each value came from, and exit.
    #[arg(long)]
    pub check_config: bool,
}

impl ListenerArgs {
    /// The configuration layers: these flags over `env` (the process environment).
    pub fn layers(&self, env: BTreeMap<String, String>) -> Layers {
        let mut flags = BTreeMap::new();
        if let Some(root) = &self.root {
            flags.insert("WATCHER_ROOT", (root.to_string_lossy().into_owned(), "--root"));
        }
        if let Some(w) = &self.workers {
            flags.insert("WORKERS", (w.clone(), "--workers"));
        }
        let env_files = self.env_file.iter().map(|a| EnvFileArg::parse(a)).collect();
        Layers::new(flags, env, env_files)
    }
}
