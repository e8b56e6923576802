//! The configuration of orchestrator-listener: the same layers, env files and table as the
//! workers', but only the settings it uses, so `--check-config` shows what matters to it and
//! a worker-only setting never stops it.

use std::path::PathBuf;
use std::time::Duration;

use super::{report, value, Effective, Layers, Paths, Resolver};
use crate::config::ConfigError;
use crate::log::{Format, Level, Target};
use crate::sys::socket::Addr;

/// The name `%i` stands for in METRICS_LISTEN.
pub const INSTANCE: &str = "orchestrator-listener";

/// Everything SIGHUP may change.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerTuning {
    /// HEARTBEAT_STALE_AFTER; `None`: three of each heartbeat's own interval.
    pub stale_after: Option<Duration>,
    /// ORCHESTRATOR_NOTIFY_COMMAND split into words; empty: none.
    pub notify_argv: Vec<String>,
    pub notify_concurrency: usize,
    pub notify_timeout: Duration,
    pub kill_grace: Duration,
    pub backfill: Duration,
    pub log_level: Level,
}

#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub paths: Paths,
    pub env_files: Vec<PathBuf>,
    /// WORKERS; `None`: every worker found.
    pub workers: Option<Vec<String>>,
    pub tuning: ListenerTuning,
    pub log_format: Format,
    pub log_target: Target,
    pub enable_metrics: bool,
    pub metrics_port: u16,
    pub metrics_listen: Option<Addr>,
    /// The engine the spool is on (SPOOL); `None`: the folders.
    pub spool: Option<crate::engine::redis::settings::Settings>,
    /// With an engine, also write results and events as files (LISTENER_FILES).
    pub files: bool,
    pub effective: Vec<Effective>,
}

/// `a,b , c` → the names; empty → `None`; a bad name is an error.
fn worker_list(s: &str) -> Result<Option<Vec<String>>, ()> {
    let mut names: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !super::worker_name::is_allowed(name) {
            return Err(());
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(Some(names).filter(|n| !n.is_empty()))
}

impl ListenerConfig {
    pub fn load(layers: &Layers) -> Result<ListenerConfig, ConfigError> {
        let (mut r, root) = Resolver::open(layers)?;
        let paths = super::spool_paths(&mut r, &root)?;
        let workers = r.get("WORKERS", worker_list)?.flatten();
        let stale_after = r.secs("HEARTBEAT_STALE_AFTER")?;
        let notify_argv = r.get("ORCHESTRATOR_NOTIFY_COMMAND", value::words)?.unwrap_or_default();
        let tuning = ListenerTuning {
            stale_after,
            notify_argv,
            notify_concurrency: r.req("ORCHESTRATOR_NOTIFY_CONCURRENCY", |s| value::uint(s, 1, 64))? as usize,
            notify_timeout: r.req_secs("ORCHESTRATOR_NOTIFY_TIMEOUT")?,
            kill_grace: r.req_secs("KILL_GRACE")?,
            backfill: r.req_secs("LISTENER_BACKFILL")?,
            log_level: r.req("LOG_LEVEL", |s| s.parse::<Level>())?,
        };
        let log_format = r.req("LOG_FORMAT", |s| s.parse::<Format>())?;
        let log_target = r.req("LOG_TARGET", |s| s.parse::<Target>())?;
        let enable_metrics = r.req("ENABLE_METRICS", value::boolean)?;
        let metrics_port = r.req("METRICS_PORT", |s| value::uint(s, 0, 65535).map(|n| n as u16))?;
        let metrics_listen = r.get("METRICS_LISTEN", |s| Addr::parse(s, INSTANCE).ok_or(()))?;
        let spool = super::spool::settings(&mut r, None)?;
        let files = r.req("LISTENER_FILES", value::boolean)?;
        Ok(ListenerConfig {
            paths,
            env_files: r.env_files(),
            workers,
            tuning,
            log_format,
            log_target,
            enable_metrics,
            metrics_port,
            metrics_listen,
            spool,
            files,
            effective: r.effective,
        })
    }

    /// The configuration for SIGHUP, and the restart-only variables whose value changed.
    pub fn reload(&self, layers: &Layers) -> Result<(ListenerConfig, Vec<&'static str>), ConfigError> {
        let new = ListenerConfig::load(layers)?;
        let ignored = new
            .effective
            .iter()
            .filter(|e| super::vars::lookup(e.name).is_some_and(|v| v.reload == super::Reload::Restart))
            .filter(|e| self.effective.iter().any(|o| o.name == e.name && o.value != e.value))
            .map(|e| e.name)
            .collect();
        Ok((new, ignored))
    }

    pub fn report(&self) -> String {
        report("orchestrator-listener", &self.effective)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(env: &[(&str, &str)]) -> Result<ListenerConfig, ConfigError> {
        let layers = Layers {
            flags: BTreeMap::new(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            env_files: Vec::new(),
            ..Layers::default()
        };
        ListenerConfig::load(&layers)
    }

    #[test]
    fn defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let c = load(&[("WATCHER_ROOT", &root)]).expect("config");
        assert_eq!(c.workers, None);
        assert_eq!(c.tuning.stale_after, None);
        assert!(c.tuning.notify_argv.is_empty());
        assert_eq!(c.tuning.notify_concurrency, 4);
        assert_eq!(c.tuning.notify_timeout, Duration::from_secs(30));
        assert_eq!(c.tuning.backfill, Duration::from_secs(86400));
        assert_eq!(c.paths.events(), dir.path().join("triggers/orchestrator"));
        assert_eq!(c.paths.listener(), dir.path().join("listener"));
        let report = c.report();
        assert!(report.lines().any(|l| l.starts_with("#WORKERS=") && l.ends_with("# unset")), "{report}");
        assert!(!report.contains("CLAUDE_COMMAND"), "only its own settings: {report}");
    }

    #[test]
    fn workers_and_command_are_parsed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let c = load(&[
            ("WATCHER_ROOT", &root),
            ("WORKERS", " marie, anga,,marie "),
            ("ORCHESTRATOR_NOTIFY_COMMAND", "/usr/bin/wake 'the orchestrator'"),
            ("HEARTBEAT_STALE_AFTER", "1.5"),
        ])
        .expect("config");
        assert_eq!(c.workers, Some(vec!["marie".to_string(), "anga".to_string()]));
        assert_eq!(c.tuning.notify_argv, vec!["/usr/bin/wake", "the orchestrator"]);
        assert_eq!(c.tuning.stale_after, Some(Duration::from_millis(1500)));
        assert_eq!(load(&[("WATCHER_ROOT", &root), ("WORKERS", " , ")]).expect("config").workers, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        for (var, value, expect) in [
            ("WORKERS", "marie,../etc", "separated by commas"),
            ("HEARTBEAT_STALE_AFTER", "0", "seconds from 1 to"),
            ("ORCHESTRATOR_NOTIFY_COMMAND", "'open", "split like a shell"),
            ("ORCHESTRATOR_NOTIFY_CONCURRENCY", "0", "from 1 to 64"),
            ("ORCHESTRATOR_NOTIFY_TIMEOUT", "-1", "seconds from 0.1 to"),
            ("LISTENER_BACKFILL", "soon", "seconds from 0 to"),
        ] {
            let e = load(&[("WATCHER_ROOT", &root), (var, value)]).expect_err(var);
            assert!(e.0.starts_with(&format!("{var}=")) && e.0.contains(expect), "{e}");
        }
    }

    #[test]
    fn a_worker_only_setting_does_not_matter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        load(&[("WATCHER_ROOT", &root), ("MAX_RETRIES", "abc")]).expect("not the listener's");
    }
}
