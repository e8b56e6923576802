//! Configuration: command-line flag > environment > env file (the files named by
//! `--env-file`, else `ROOT/.env`) > default, validated into strong types once. A bad value is
//! a [`ConfigError`] naming the variable, the value and what is expected; the binaries turn it
//! into exit status 78 (EX_CONFIG). Env files are read as systemd reads them ([`envfile`]).
//!
//! The process environment is passed in as a snapshot, never read here, so tests are hermetic.

pub(crate) mod bounds;
pub mod envfile;
pub mod listener;
mod policy;
mod spool;
pub(crate) mod value;
pub mod vars;
pub(crate) mod worker_name;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::log::{Format, Level, Target};
use crate::spool::Layout;
pub use policy::Policy;
pub use vars::{Reload, Var, VARS};

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Environment,
    EnvFile(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Environment => f.write_str("environment"),
            Source::EnvFile(p) => write!(f, "env file {}", p.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A configuration problem; always fatal at start-up, logged and ignored on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The raw layers, before any value is interpreted.
#[derive(Clone, Debug, Default)]
pub struct Layers {
    /// Values given as flags: variable name → (value, flag spelling).
    pub flags: BTreeMap<&'static str, (String, &'static str)>,
    /// The process environment at start-up.
    pub env: BTreeMap<String, String>,
    /// Env files named by `--env-file`, in order; none: `ROOT/.env` if it exists.
    pub env_files: Vec<EnvFileArg>,
    /// Variables of `env` that hold exactly what the named env files gave them at start-up:
    /// systemd put them there from the same files (EnvironmentFile=), so they are the files'
    /// own, and follow the files when SIGHUP reads them again.
    pub from_files: BTreeSet<String>,
}

impl Layers {
    /// The layers at start-up, with [`Layers::from_files`] worked out. A file that cannot be
    /// read is left for [`Config::load`] to report.
    pub fn new(
        flags: BTreeMap<&'static str, (String, &'static str)>,
        env: BTreeMap<String, String>,
        env_files: Vec<EnvFileArg>,
    ) -> Layers {
        let mut files = BTreeMap::new();
        for arg in &env_files {
            if let Ok(Some(map)) = read_env_file(&arg.path, false) {
                files.extend(map);
            }
        }
        let from_files = files.into_iter().filter(|(k, v)| env.get(k) == Some(v)).map(|(k, _)| k).collect();
        Layers { flags, env, env_files, from_files }
    }

    /// The environment's own value of `name`: not one it got from the named env files.
    fn own_env(&self, name: &str) -> Option<&String> {
        self.env.get(name).filter(|_| !self.from_files.contains(name))
    }
}

/// An env file named on the command line (under systemd, the same files as the unit's
/// EnvironmentFile=, so that SIGHUP applies what they say now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFileArg {
    pub path: PathBuf,
    /// Named as `-PATH`: a missing file is skipped, as systemd's `EnvironmentFile=-PATH`.
    pub optional: bool,
}

impl EnvFileArg {
    pub fn parse(arg: &str) -> EnvFileArg {
        match arg.strip_prefix('-') {
            Some(rest) if !rest.is_empty() => EnvFileArg { path: rest.into(), optional: true },
            _ => EnvFileArg { path: arg.into(), optional: false },
        }
    }
}

/// The folders of the spool, resolved to absolute paths: the spool's [`Layout`], which owns
/// every path below them.
pub type Paths = Layout;

/// Everything SIGHUP may change.
#[derive(Clone, Debug, PartialEq)]
pub struct Tuning {
    pub max_concurrent: usize,
    pub task_timeout: Duration,
    pub kill_grace: Duration,
    pub shutdown_grace: Duration,
    pub heartbeat_interval: Duration,
    pub max_retries: u32,
    pub retry_backoff: f64,
    pub initial_retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub max_reclaims: u32,
    pub breaker_threshold: u32,
    pub breaker_timeout: Duration,
    /// The cap of the breaker's backoff (never below `breaker_timeout`).
    pub breaker_max_timeout: Duration,
    /// CLAUDE_COMMAND and CLAUDE_ARGS, split into words.
    pub agent_argv: Vec<String>,
    pub max_task_bytes: u64,
    pub max_output_bytes: u64,
    /// RESCAN_INTERVAL when set (`None`: set to 0, off).
    pub rescan_interval: Option<Duration>,
    /// RESCAN_INTERVAL is unset: the daemon decides from the queue's filesystem.
    pub rescan_auto: bool,
    /// TASK_QUIET_PERIOD (zero: off).
    pub quiet_period: Duration,
    pub log_level: Level,
    /// Variables from the env files, set in the agent's environment (read again on SIGHUP).
    pub agent_env: BTreeMap<String, String>,
    /// Variables removed from the agent's environment: see [`agent_unset`].
    pub agent_unset: Vec<String>,
    pub policy: Policy,
}

/// One effective value, for `--check-config`.
#[derive(Clone, Debug)]
pub struct Effective {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: Source,
}

/// The validated configuration of one daemon.
#[derive(Clone, Debug)]
pub struct Config {
    pub worker: String,
    pub paths: Paths,
    /// The env files that were read.
    pub env_files: Vec<PathBuf>,
    pub tuning: Tuning,
    pub log_format: Format,
    pub log_target: Target,
    pub enable_metrics: bool,
    pub metrics_port: u16,
    /// METRICS_LISTEN: an address to bind instead of `0.0.0.0:METRICS_PORT`.
    pub metrics_listen: Option<crate::sys::socket::Addr>,
    /// Queue the task lines written to `pipes/<worker>.pipe` (PIPE_INTAKE).
    pub pipe_intake: bool,
    /// The engine the spool is on (SPOOL); `None`: the folders.
    pub spool: Option<crate::engine::redis::settings::Settings>,
    pub effective: Vec<Effective>,
}

/// The largest env file read; systemd's own limit is larger, but no settings file is this big.
const MAX_ENV_FILE_BYTES: u64 = 4 << 20;

/// Reads `path` as systemd's EnvironmentFile= does. A missing file is `Ok(None)` unless
/// `required`; a line systemd would ignore, or read differently in another version, is an
/// error naming the line (never showing it: it may hold a secret).
pub fn read_env_file(path: &Path, required: bool) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    // ROOT/.env is in the spool: a FIFO there (or at any env file) is an error, never waited
    // on. A symlink is followed: operators link configuration files.
    let bytes = match crate::spool::read::read_following(path, MAX_ENV_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(crate::spool::read::Error::Io(e))
            if !required
                && (e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(ConfigError(format!("env file {}: {e}", path.display()))),
    };
    let parsed = envfile::parse(&bytes);
    if let Some(p) = parsed.problems.first() {
        return Err(ConfigError(format!("env file {}: {p}", path.display())));
    }
    Ok(Some(parsed.vars.into_iter().collect()))
}

type EnvMap = BTreeMap<String, String>;

/// Resolves values through the layers.
struct Resolver<'a> {
    layers: &'a Layers,
    /// Files named by --env-file, later ones first.
    named: Vec<(PathBuf, EnvMap)>,
    /// ROOT/.env, when no file is named.
    fallback: Option<(PathBuf, EnvMap)>,
    effective: Vec<Effective>,
}

impl Resolver<'_> {
    fn raw(&self, name: &'static str) -> Option<(String, Source)> {
        if let Some((v, flag)) = self.layers.flags.get(name) {
            return Some((v.clone(), Source::Flag(flag)));
        }
        if let Some(v) = self.layers.own_env(name) {
            return Some((v.clone(), Source::Environment));
        }
        let files = self.named.iter().chain(self.fallback.as_ref());
        for (path, map) in files {
            if let Some(v) = map.get(name) {
                return Some((v.clone(), Source::EnvFile(path.clone())));
            }
        }
        vars::lookup(name).and_then(|v| v.default).map(|d| (d.to_string(), Source::Default))
    }

    /// The value of `name` run through `parse`; records it for `--check-config`.
    fn get<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ()>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((value, source)) = self.raw(name) else {
            self.effective.push(Effective { name, value: None, source: Source::Default });
            return Ok(None);
        };
        let parsed = parse(&value).map_err(|()| bad_value(name, &value, &source))?;
        self.effective.push(Effective { name, value: Some(value), source });
        Ok(Some(parsed))
    }

    /// Like `get` for a variable that has a default in the table.
    fn req<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ()>,
    ) -> Result<T, ConfigError> {
        self.get(name, parse)?.ok_or_else(|| ConfigError(format!("{name}: no value and no default")))
    }

    /// A time setting, held to its range ([`bounds`]).
    fn secs(&mut self, name: &'static str) -> Result<Option<Duration>, ConfigError> {
        let span = bounds::of(name).ok_or_else(|| ConfigError(format!("{name}: no range of values")))?;
        self.get(name, |s| span.parse(s))
    }

    /// Like `secs` for a variable that has a default in the table.
    fn req_secs(&mut self, name: &'static str) -> Result<Duration, ConfigError> {
        self.secs(name)?.ok_or_else(|| ConfigError(format!("{name}: no value and no default")))
    }
}

impl<'a> Resolver<'a> {
    /// Reads the env files and resolves WATCHER_ROOT, which decides where the default env
    /// file is. Returns the resolver (with nothing recorded yet) and the root.
    fn open(layers: &'a Layers) -> Result<(Resolver<'a>, PathBuf), ConfigError> {
        let mut r = Resolver { layers, named: Vec::new(), fallback: None, effective: Vec::new() };
        for arg in layers.env_files.iter().rev() {
            if let Some(map) = read_env_file(&arg.path, !arg.optional)? {
                r.named.push((absolute_or_same(&arg.path), map));
            }
        }
        let root = r.req("WATCHER_ROOT", absolute)?;
        if layers.env_files.is_empty() {
            let path = Layout::env_file(&root);
            if let Some(mut map) = read_env_file(&path, false)? {
                // A root's own env file cannot move the root.
                map.remove("WATCHER_ROOT");
                r.fallback = Some((path, map));
            }
        }
        r.effective.clear();
        let root = r.req("WATCHER_ROOT", absolute)?;
        Ok((r, root))
    }

    /// The env files that were read, in the order they were named, ROOT/.env last.
    fn env_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.named.iter().rev().map(|(p, _)| p.clone()).collect();
        files.extend(self.fallback.as_ref().map(|(p, _)| p.clone()));
        files
    }
}

/// The spool's folders under `root`, each overridable by its variable.
fn spool_paths(r: &mut Resolver, root: &Path) -> Result<Paths, ConfigError> {
    let mut layout = Layout::new(root);
    for &var in crate::spool::layout::FOLDER_VARS {
        if let Some(dir) = r.get(var, absolute)? {
            layout.set_folder(var, dir);
        }
    }
    Ok(layout)
}

fn bad_value(name: &str, value: &str, source: &Source) -> ConfigError {
    let expects = vars::lookup(name).map_or("a valid value", |v| v.expects);
    let from = match source {
        Source::Default => String::new(),
        s => format!(" (from {s})"),
    };
    ConfigError(format!("{name}={value:?} is invalid: expected {expects}{from}"))
}

fn absolute(p: &str) -> Result<PathBuf, ()> {
    if p.is_empty() {
        return Err(());
    }
    std::path::absolute(p).map_err(|_| ())
}

impl Config {
    /// Validates `worker` and every setting through `layers`.
    pub fn load(worker: &str, layers: &Layers) -> Result<Config, ConfigError> {
        worker_name::check(worker).map_err(ConfigError)?;
        Config::resolve(worker, layers)
    }

    /// The settings of no one worker, for tools that serve them all (watcherctl): the same
    /// layers and env-file rules, and `worker` is empty.
    pub fn load_shared(layers: &Layers) -> Result<Config, ConfigError> {
        Config::resolve("", layers)
    }

    fn resolve(worker: &str, layers: &Layers) -> Result<Config, ConfigError> {
        let (mut r, root) = Resolver::open(layers)?;
        let mut paths = spool_paths(&mut r, &root)?;
        paths.lock = r.get("LOCK_DIR", absolute)?;
        let tuning = tuning(&mut r)?;
        let log_format = r.req("LOG_FORMAT", |s| s.parse::<Format>())?;
        let log_target = r.req("LOG_TARGET", |s| s.parse::<Target>())?;
        let enable_metrics = r.req("ENABLE_METRICS", value::boolean)?;
        let metrics_port = r.req("METRICS_PORT", |s| value::uint(s, 0, 65535).map(|n| n as u16))?;
        let metrics_listen =
            r.get("METRICS_LISTEN", |s| crate::sys::socket::Addr::parse(s, worker).ok_or(()))?;
        let pipe_intake = r.req("PIPE_INTAKE", value::boolean)?;
        let heartbeat = (!worker.is_empty()).then_some(tuning.heartbeat_interval);
        let spool = spool::settings(&mut r, heartbeat)?;
        let env_files = r.env_files();
        Ok(Config {
            worker: worker.to_string(),
            paths,
            env_files,
            tuning,
            log_format,
            log_target,
            enable_metrics,
            metrics_port,
            metrics_listen,
            pipe_intake,
            spool,
            effective: r.effective,
        })
    }

    /// The configuration for SIGHUP: `layers` with the env file read again. Returns the new
    /// configuration and the names of restart-only variables whose value changed.
    pub fn reload(&self, layers: &Layers) -> Result<(Config, Vec<&'static str>), ConfigError> {
        let new = Config::load(&self.worker, layers)?;
        let ignored = new
            .effective
            .iter()
            .filter(|e| vars::lookup(e.name).is_some_and(|v| v.reload == Reload::Restart))
            .filter(|e| self.effective.iter().any(|o| o.name == e.name && o.value != e.value))
            .map(|e| e.name)
            .collect();
        Ok((new, ignored))
    }

    /// The `--check-config` report: one `NAME=value  # source` line per variable.
    pub fn report(&self) -> String {
        report(&format!("worker-watcher {}", self.worker), &self.effective)
    }
}

/// A `--check-config` report: a title, then one `NAME=value  # source` line per variable.
pub fn report(title: &str, effective: &[Effective]) -> String {
    let mut out = format!("# {title}: effective configuration\n");
    let width = effective
        .iter()
        .map(|e| e.name.len() + e.value.as_deref().map_or(0, |v| shell_words::quote(v).len()) + 1)
        .max()
        .unwrap_or(0);
    for e in effective {
        let line = match &e.value {
            Some(v) => format!("{}={}", e.name, shell_words::quote(v)),
            None => format!("#{}=", e.name),
        };
        let source = match (&e.value, &e.source) {
            (None, _) => "unset".to_string(),
            (_, s) => s.to_string(),
        };
        out.push_str(&format!("{line:<width$}  # {source}\n"));
    }
    out
}

fn absolute_or_same(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What the env files give the agent: every variable of the files (the named ones, else
/// ROOT/.env) that the environment does not set itself.
fn agent_env(r: &Resolver) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    // `named` is later files first: extended earliest first, the later ones win.
    for (_, map) in r.named.iter().rev().chain(r.fallback.as_ref()) {
        env.extend(
            map.iter().filter(|(k, _)| r.layers.own_env(k).is_none()).map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    env
}

/// Variables systemd set from the env files at start that the files no longer hold: the
/// agent must not inherit them from the daemon's environment.
fn agent_unset(r: &Resolver, set: &BTreeMap<String, String>) -> Vec<String> {
    r.layers.from_files.iter().filter(|k| !set.contains_key(*k)).cloned().collect()
}

fn tuning(r: &mut Resolver) -> Result<Tuning, ConfigError> {
    let mut agent_argv = r.req("CLAUDE_COMMAND", value::words)?;
    if agent_argv.is_empty() {
        return Err(bad_value("CLAUDE_COMMAND", "", &Source::Default));
    }
    agent_argv.extend(r.req("CLAUDE_ARGS", value::words)?);
    let rescan = r.secs("RESCAN_INTERVAL")?;
    let agent_env = agent_env(r);
    let policy = policy::policy(r, &agent_argv[0])?;
    Ok(Tuning {
        max_concurrent: r.req("MAX_CONCURRENT_TASKS", |s| value::uint(s, 1, 1024))? as usize,
        task_timeout: r.req_secs("TASK_TIMEOUT")?,
        kill_grace: r.req_secs("KILL_GRACE")?,
        shutdown_grace: r.req_secs("SHUTDOWN_GRACE")?,
        heartbeat_interval: r.req_secs("HEARTBEAT_INTERVAL")?,
        max_retries: r.req("MAX_RETRIES", |s| value::uint(s, 0, 1000))? as u32,
        retry_backoff: r.req("RETRY_BACKOFF", |s| value::float(s, 1.0, true))?,
        initial_retry_delay: r.req_secs("INITIAL_RETRY_DELAY")?,
        max_retry_delay: r.req_secs("MAX_RETRY_DELAY")?,
        max_reclaims: r.req("MAX_RECLAIMS", |s| value::uint(s, 0, 1000))? as u32,
        breaker_threshold: r.req("CIRCUIT_BREAKER_THRESHOLD", |s| value::uint(s, 1, 1_000_000))? as u32,
        breaker_timeout: r.req_secs("CIRCUIT_BREAKER_TIMEOUT")?,
        breaker_max_timeout: r.req_secs("CIRCUIT_BREAKER_MAX_TIMEOUT")?,
        agent_argv,
        max_task_bytes: r.req("MAX_TASK_BYTES", |s| value::uint(s, 1, 1 << 32))?,
        max_output_bytes: r.req("MAX_OUTPUT_BYTES", |s| value::uint(s, 0, 1 << 32))?,
        rescan_interval: rescan.filter(|d| !d.is_zero()),
        rescan_auto: rescan.is_none(),
        quiet_period: r.req_secs("TASK_QUIET_PERIOD")?,
        log_level: r.req("LOG_LEVEL", |s| s.parse::<Level>())?,
        agent_unset: agent_unset(r, &agent_env),
        agent_env,
        policy,
    })
}

#[cfg(test)]
mod tests;
