//! Refusing unsafe engines: reads the settings a task's safety depends on (CONFIG GET
//! appendonly, appendfsync, maxmemory-policy; INFO server and replication) and returns a typed
//! verdict. A daemon refuses to start (exit status 78, one line naming the setting) on any
//! [`Unsafe`]; the [`Verdict`]'s notes are worth a log line but not a refusal.

use std::fmt;

use super::client::Engine;
use super::error::EngineError;

/// A setting that can lose or evict tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsafe {
    /// `appendonly no`: only RDB snapshots, minutes of acknowledged writes lost in a crash.
    AppendOnlyOff,
    /// An evicting `maxmemory-policy`: the engine deletes keys (tasks) when memory is full.
    Evicting(String),
    /// CONFIG GET is not allowed (renamed or denied by ACL): the settings cannot be checked.
    Unreadable(String),
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsafe::AppendOnlyOff => f.write_str(
                "the engine has appendonly no: a crash loses acknowledged tasks; set appendonly yes (and appendfsync always)",
            ),
            Unsafe::Evicting(p) => write!(
                f,
                "the engine has maxmemory-policy {p}: it would evict tasks when memory is full; set maxmemory-policy noeviction"
            ),
            Unsafe::Unreadable(e) => write!(
                f,
                "the engine's settings cannot be read (CONFIG GET: {e}); allow CONFIG GET to this user so appendonly and maxmemory-policy can be checked"
            ),
        }
    }
}

/// What the check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `redis 7.0.15`, `valkey 8.0.1`.
    pub server: String,
    /// Whether WAITAOF exists (Redis 7.2, Valkey 7.2 and later).
    pub waitaof: bool,
    /// Replicas connected to this primary.
    pub replicas: u32,
    /// `always`, `everysec` or `no`.
    pub appendfsync: String,
    pub refusals: Vec<Unsafe>,
    /// Worth saying, not refused: `appendfsync everysec` (a power loss can lose about a
    /// second), no replica (no failover).
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn safe(&self) -> bool {
        self.refusals.is_empty()
    }
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

/// `(major, minor)` of a version string.
fn version(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Judges the settings read; pure, so every case is tested without a server.
pub fn judge(config: &[(String, String)], server_info: &str, replication: &str) -> Verdict {
    let get = |k: &str| config.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    if get("appendonly") != Some("yes") {
        refusals.push(Unsafe::AppendOnlyOff);
    }
    let policy = get("maxmemory-policy").unwrap_or("unknown");
    if policy != "noeviction" {
        refusals.push(Unsafe::Evicting(policy.to_owned()));
    }
    let appendfsync = get("appendfsync").unwrap_or("unknown").to_owned();
    match appendfsync.as_str() {
        "always" => {}
        "everysec" => {
            notes.push("appendfsync everysec: a power loss can lose about the last second of writes".into())
        }
        other => notes.push(format!("appendfsync {other}: the kernel decides when writes reach the disk")),
    }
    let (name, v) = match field(server_info, "valkey_version") {
        Some(v) => ("valkey", v),
        None => ("redis", field(server_info, "redis_version").unwrap_or("unknown")),
    };
    let waitaof = version(v) >= (7, 2);
    let replicas = field(replication, "connected_slaves").and_then(|n| n.parse().ok()).unwrap_or(0);
    if replicas == 0 {
        notes.push("no replica: the engine is a single point of failure".into());
    }
    Verdict { server: format!("{name} {v}"), waitaof, replicas, appendfsync, refusals, notes }
}

/// Reads the engine's settings and judges them.
pub fn check(engine: &mut Engine) -> Result<Verdict, EngineError> {
    let con = engine.connection();
    let server: String = redis::cmd("INFO").arg("server").query(con)?;
    let replication: String = redis::cmd("INFO").arg("replication").query(con)?;
    let mut config = Vec::new();
    for name in ["appendonly", "appendfsync", "maxmemory-policy"] {
        match redis::cmd("CONFIG").arg("GET").arg(name).query::<Vec<(String, String)>>(con) {
            Ok(pairs) => config.extend(pairs),
            Err(e) if e.is_io_error() || e.is_timeout() => return Err(e.into()),
            Err(e) => {
                let mut v = judge(&[], &server, &replication);
                v.refusals = vec![Unsafe::Unreadable(e.to_string())];
                return Ok(v);
            }
        }
    }
    Ok(judge(&config, &server, &replication))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(aof: &str, fsync: &str, policy: &str) -> Vec<(String, String)> {
        [("appendonly", aof), ("appendfsync", fsync), ("maxmemory-policy", policy)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const REDIS_70: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
    const VALKEY_80: &str =
        "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n";

    #[test]
    fn verdicts() {
        let v = judge(&cfg("yes", "always", "noeviction"), REDIS_70, "connected_slaves:0\r\n");
        assert!(v.safe());
        assert_eq!((v.server.as_str(), v.waitaof, v.replicas), ("redis 7.0.15", false, 0));
        let v = judge(&cfg("yes", "everysec", "noeviction"), VALKEY_80, "connected_slaves:2\r\n");
        assert!(v.safe());
        assert_eq!((v.server.as_str(), v.waitaof, v.replicas), ("valkey 8.0.1", true, 2));
        assert!(v.notes.iter().any(|n| n.starts_with("appendfsync everysec")));
        let v = judge(&cfg("no", "everysec", "allkeys-lru"), REDIS_70, "");
        assert_eq!(v.refusals, vec![Unsafe::AppendOnlyOff, Unsafe::Evicting("allkeys-lru".into())]);
        assert!(v.refusals[1].to_string().contains("maxmemory-policy allkeys-lru"));
        assert!(v.refusals[0].to_string().contains("appendonly no"));
        let v = judge(&cfg("yes", "always", "volatile-ttl"), REDIS_70, "");
        assert_eq!(v.refusals, vec![Unsafe::Evicting("volatile-ttl".into())]);
    }
}
