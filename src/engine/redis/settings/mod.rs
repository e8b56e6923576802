//! The engine's settings, parsed from the environment as pure functions: `SPOOL` (the
//! engine's address), the password (from a file or a systemd credential, never the URL),
//! `SPOOL_PREFIX`, `SPOOL_CONSUMER`, `LEASE`, `RESULT_TTL`, `SPOOL_TIMEOUT`.
//!
//! src/config/spool.rs reads them through the configuration's layers (their ranges are in
//! src/config/bounds.rs); the messages have the shape of the other settings', so a bad value
//! stops a daemon with exit status 78.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{is_valid_consumer, is_valid_prefix};
use crate::config::ConfigError;

/// The name of the systemd credential holding the password (`LoadCredential=spool-password:…`).
pub const CREDENTIAL: &str = "spool-password";
const SENTINEL_PORT: u16 = 26379;
const REDIS_PORT: u16 = 6379;

/// Where the engine is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp {
        host: String,
        port: u16,
        tls: bool,
    },
    Unix(PathBuf),
    /// The primary named `service`, found through these Sentinels.
    Sentinel {
        nodes: Vec<(String, u16)>,
        service: String,
    },
}

/// A parsed `SPOOL` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub address: Address,
    /// An ACL user; the password comes from [`password`].
    pub username: Option<String>,
    pub db: i64,
}

/// Which backend `SPOOL` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    File,
    Redis(Target),
}

const SPOOL_EXPECTS: &str = "file, redis://[user@]host[:port][/db], rediss://…, \
redis+unix:///path/to.sock[?db=N] or redis-sentinel://host[:port],host[:port]/service[/db]";

fn invalid(name: &str, value: &str, expects: &str) -> ConfigError {
    ConfigError(format!("{name}={value:?} is invalid: expected {expects}"))
}

/// `host` or `host:port` or `[v6]:port`.
fn host_port(s: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        (h, tail.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p > 0)?,
        None => default,
    };
    let ok = !host.is_empty() && host.bytes().all(|c| c.is_ascii_alphanumeric() || b".-_:".contains(&c));
    ok.then(|| (host.to_owned(), port))
}

fn db(s: &str) -> Option<i64> {
    s.parse().ok().filter(|n| (0..=15).contains(n))
}

/// Parses `SPOOL`. A URL carrying a password is refused with a message that does not repeat it.
pub fn backend(value: &str) -> Result<Backend, ConfigError> {
    let v = value.trim();
    if v.is_empty() || v == "file" {
        return Ok(Backend::File);
    }
    let bad = || invalid("SPOOL", value, SPOOL_EXPECTS);
    let (scheme, rest) = v.split_once("://").ok_or_else(bad)?;
    // Userinfo ends at the last '@' before the path.
    let (auth, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (user, hosts) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    if user.is_some_and(|u| u.contains(':')) {
        return Err(ConfigError(format!(
            "SPOOL holds a password (\"{scheme}://{}:…@…\"): put it in the file named by \
             SPOOL_PASSWORD_FILE or in the systemd credential {CREDENTIAL}, never in the URL",
            user.and_then(|u| u.split(':').next()).unwrap_or_default()
        )));
    }
    let username = match user {
        Some(u) if !u.is_empty() && is_valid_consumer(u) => Some(u.to_owned()),
        Some(_) => return Err(bad()),
        None => None,
    };
    let target = |address, db| Ok(Backend::Redis(Target { address, username: username.clone(), db }));
    match scheme {
        "redis" | "rediss" => {
            let (host, port) = host_port(hosts, REDIS_PORT).ok_or_else(bad)?;
            let n = match path.strip_prefix('/') {
                None | Some("") => 0,
                Some(d) => db(d).ok_or_else(bad)?,
            };
            target(Address::Tcp { host, port, tls: scheme == "rediss" }, n)
        }
        "redis+unix" | "unix" if hosts.is_empty() && path.starts_with('/') => {
            let (p, query) = match path.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (path, None),
            };
            let n = match query {
                None => 0,
                Some(q) => q.strip_prefix("db=").and_then(db).ok_or_else(bad)?,
            };
            target(Address::Unix(PathBuf::from(p)), n)
        }
        "redis-sentinel" => {
            let nodes = hosts
                .split(',')
                .map(|h| host_port(h, SENTINEL_PORT))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            let mut parts = path.strip_prefix('/').unwrap_or_default().split('/');
            let service = parts.next().filter(|s| is_valid_consumer(s)).ok_or_else(bad)?.to_owned();
            let n = match parts.next() {
                None | Some("") => 0,
                Some(d) => db(d).ok_or_else(bad)?,
            };
            if parts.next().is_some() {
                return Err(bad());
            }
            target(Address::Sentinel { nodes, service }, n)
        }
        _ => Err(bad()),
    }
}

/// Reads a password file: its content without the final newline; empty is an error.
fn read_password(name: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{name}={:?} cannot be read: {e}", path.display().to_string())))?;
    let p = text.strip_suffix('\n').unwrap_or(&text);
    let p = p.strip_suffix('\r').unwrap_or(p);
    if p.is_empty() {
        return Err(ConfigError(format!(
            "{name}={:?} is empty: expected the engine's password",
            path.display().to_string()
        )));
    }
    Ok(p.to_owned())
}

/// The password: the file `SPOOL_PASSWORD_FILE` names, else the systemd credential
/// `spool-password` under `$CREDENTIALS_DIRECTORY` if it exists, else none.
pub fn password(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(file) = get("SPOOL_PASSWORD_FILE").filter(|f| !f.is_empty()) {
        return read_password("SPOOL_PASSWORD_FILE", Path::new(&file)).map(Some);
    }
    if let Some(dir) = get("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        let path = Path::new(&dir).join(CREDENTIAL);
        if path.exists() {
            return read_password("CREDENTIALS_DIRECTORY", &path).map(Some);
        }
    }
    Ok(None)
}

/// Everything a host needs to use the engine.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub target: Target,
    pub password: Option<String>,
    pub prefix: String,
    pub consumer: String,
    pub lease: Duration,
    pub result_ttl: Duration,
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    // Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("target", &self.target)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("prefix", &self.prefix)
            .field("consumer", &self.consumer)
            .field("lease", &self.lease)
            .field("result_ttl", &self.result_ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Default RESULT_TTL: six hours. Results live in the engine's memory; the listener archives
/// each one, and that archive is the long-term record.
pub const RESULT_TTL: Duration = Duration::from_secs(6 * 3600);
/// Default SPOOL_TIMEOUT.
pub const TIMEOUT: Duration = Duration::from_secs(2);

fn seconds(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match get(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0 && *x <= 1e9)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| invalid(name, &v, "seconds, greater than 0")),
    }
}

/// The engine's settings, or `None` when `SPOOL` is `file` or unset. `hostname` is the
/// default consumer; `heartbeat` the HEARTBEAT_INTERVAL (LEASE defaults to three of them, and
/// must be longer than one); `None` for a program without heartbeats (the listener,
/// watcherctl), which holds no lease.
pub fn settings(
    get: &dyn Fn(&str) -> Option<String>,
    hostname: &str,
    heartbeat: Option<Duration>,
) -> Result<Option<Settings>, ConfigError> {
    let target = match backend(&get("SPOOL").unwrap_or_default())? {
        Backend::File => return Ok(None),
        Backend::Redis(t) => t,
    };
    if matches!(target.address, Address::Tcp { tls: true, .. }) && !cfg!(feature = "redis-tls") {
        return Err(ConfigError(
            "SPOOL is a rediss:// URL but this build has no TLS (cargo feature redis-tls): use redis+unix://, \
             a TLS tunnel, or a build with the feature"
                .into(),
        ));
    }
    let prefix = get("SPOOL_PREFIX").filter(|p| !p.is_empty()).unwrap_or_else(|| "ww".into());
    if !is_valid_prefix(&prefix) {
        return Err(invalid("SPOOL_PREFIX", &prefix, "1-64 characters of A-Z a-z 0-9 . _ -"));
    }
    let consumer = get("SPOOL_CONSUMER").filter(|c| !c.is_empty()).unwrap_or_else(|| hostname.to_owned());
    if !is_valid_consumer(&consumer) {
        return Err(invalid(
            "SPOOL_CONSUMER",
            &consumer,
            "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit (default: the host name)",
        ));
    }
    let heartbeat_or_default = heartbeat.unwrap_or(Duration::from_secs(10));
    let lease = seconds(get, "LEASE", heartbeat_or_default * 3)?;
    if let Some(heartbeat) = heartbeat.filter(|h| lease <= *h) {
        return Err(ConfigError(format!(
            "LEASE={}s must be longer than HEARTBEAT_INTERVAL={}s: the lease is renewed at every heartbeat",
            lease.as_secs_f64(),
            heartbeat.as_secs_f64()
        )));
    }
    Ok(Some(Settings {
        password: password(get)?,
        result_ttl: seconds(get, "RESULT_TTL", RESULT_TTL)?,
        timeout: seconds(get, "SPOOL_TIMEOUT", TIMEOUT)?,
        target,
        prefix,
        consumer,
        lease,
    }))
}

#[cfg(test)]
mod tests;
