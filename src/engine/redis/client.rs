//! One synchronous connection to the engine ([`Engine`]): connect (TCP, TLS, unix socket, or
//! the primary found through Sentinel) with timeouts, load the scripts, run one call or a
//! pipelined batch of calls in one round trip, and wait for replicas.
//!
//! It blocks: only the I/O thread (io.rs) and tools like watcherctl use it, never the loop.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, Value};

use super::error::EngineError;
use super::keys::{Fleet, Keys, EVENTS_GROUP, GROUP, LISTENER_GROUP};
use super::ops::Call;
use super::reply::Reply;
use super::scripts;
use super::settings::{Address, Target};

/// A connection to the engine with every script loaded.
pub struct Engine {
    con: redis::Connection,
}

fn info(
    addr: ConnectionAddr,
    target: &Target,
    password: Option<&str>,
) -> Result<ConnectionInfo, EngineError> {
    let mut redis = RedisConnectionInfo::default().set_db(target.db);
    if let Some(u) = &target.username {
        redis = redis.set_username(u);
    }
    if let Some(p) = password {
        redis = redis.set_password(p);
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

fn primary(
    target: &Target,
    password: Option<&str>,
    nodes: &[(String, u16)],
    service: &str,
) -> Result<redis::Client, EngineError> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let addrs = nodes.iter().map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p));
    let mut b = SentinelClientBuilder::new(addrs, service, SentinelServerType::Master)?
        .set_client_to_redis_db(target.db);
    if let Some(u) = &target.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = password {
        b = b.set_client_to_redis_password(p);
    }
    Ok(b.build()?.get_client()?)
}

impl Engine {
    /// Connects, sets `timeout` on every read and write, and loads the scripts.
    pub fn connect(
        target: &Target,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Engine, EngineError> {
        let client = match &target.address {
            Address::Tcp { host, port, tls: false } => {
                redis::Client::open(info(ConnectionAddr::Tcp(host.clone(), *port), target, password)?)?
            }
            Address::Tcp { host, port, tls: true } => redis::Client::open(info(
                ConnectionAddr::TcpTls { host: host.clone(), port: *port, insecure: false, tls_params: None },
                target,
                password,
            )?)?,
            Address::Unix(path) => {
                redis::Client::open(info(ConnectionAddr::Unix(path.clone()), target, password)?)?
            }
            Address::Sentinel { nodes, service } => primary(target, password, nodes, service)?,
        };
        let con = client.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        let mut engine = Engine { con };
        engine.load_scripts()?;
        Ok(engine)
    }

    /// The connection itself, for plain commands (and tests).
    pub fn connection(&mut self) -> &mut redis::Connection {
        &mut self.con
    }

    /// Changes the read timeout (a blocking read waits longer than an ordinary call).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), EngineError> {
        Ok(self.con.set_read_timeout(timeout)?)
    }

    /// SCRIPT LOAD of every script, pipelined.
    pub fn load_scripts(&mut self) -> Result<(), EngineError> {
        let mut p = redis::pipe();
        for s in scripts::all() {
            p.cmd("SCRIPT").arg("LOAD").arg(&s.source).ignore();
        }
        p.exec(&mut self.con)?;
        Ok(())
    }

    /// Creates the worker's consumer group (from the stream's start: `$` would skip what was
    /// queued before it existed) and the fleet streams' groups, unless they exist.
    pub fn ensure_groups(&mut self, keys: &Keys) -> Result<(), EngineError> {
        self.ensure_group(&keys.queue(), GROUP)?;
        self.ensure_fleet_groups(keys.fleet())
    }

    /// Makes the worker known to the fleet (`P:workers`) and says so on the heartbeats stream,
    /// which the listener follows: a worker that made its queue has shown up.
    pub fn announce_worker(&mut self, keys: &Keys) -> Result<(), EngineError> {
        let fleet = keys.fleet();
        redis::pipe()
            .cmd("SADD")
            .arg(fleet.workers())
            .arg(keys.worker())
            .ignore()
            .cmd("XADD")
            .arg(fleet.heartbeats())
            .arg("MAXLEN")
            .arg("~")
            .arg(1000)
            .arg("*")
            .arg("worker")
            .arg(keys.worker())
            .arg("host")
            .arg("")
            .ignore()
            .exec(&mut self.con)?;
        Ok(())
    }

    /// Creates the fleet streams' groups (the listener's, the orchestrator's), unless they
    /// exist.
    pub fn ensure_fleet_groups(&mut self, fleet: &Fleet) -> Result<(), EngineError> {
        self.ensure_group(&fleet.results(), LISTENER_GROUP)?;
        self.ensure_group(&fleet.events(), EVENTS_GROUP)
    }

    fn ensure_group(&mut self, stream: &str, group: &str) -> Result<(), EngineError> {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut self.con);
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Runs one call; reloads the scripts and runs it again once if the server lost them.
    pub fn run(&mut self, call: &Call) -> Result<Reply, EngineError> {
        match call.evalsha().query::<Value>(&mut self.con) {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.load_scripts()?;
                call.read(call.evalsha().query::<Value>(&mut self.con)?)
            }
            Err(e) => Err(e.into()),
            Ok(v) => call.read(v),
        }
    }

    /// Runs `calls` pipelined in one round trip: each gets its own outcome. The outer error
    /// is the connection's (no outcome is known then). A NOSCRIPT reply means that call did not
    /// run: the scripts are loaded again and those calls sent again, once.
    pub fn run_batch(&mut self, calls: &[Call]) -> Result<Vec<Result<Reply, EngineError>>, EngineError> {
        let mut out = self.pipeline(calls.iter())?;
        let lost: Vec<usize> =
            out.iter().enumerate().filter(|(_, r)| is_noscript(r)).map(|(i, _)| i).collect();
        if !lost.is_empty() {
            self.load_scripts()?;
            let again = self.pipeline(lost.iter().map(|&i| &calls[i]))?;
            for (i, r) in lost.into_iter().zip(again) {
                out[i] = r;
            }
        }
        Ok(out)
    }

    fn pipeline<'a>(
        &mut self,
        calls: impl Iterator<Item = &'a Call>,
    ) -> Result<Vec<Result<Reply, EngineError>>, EngineError> {
        let calls: Vec<&Call> = calls.collect();
        let mut p = redis::pipe();
        p.ignore_errors();
        for c in &calls {
            p.add_command(c.evalsha());
        }
        let values: Vec<Value> = p.query(&mut self.con)?;
        if values.len() != calls.len() {
            return Err(EngineError::Reply(format!("{} replies to {} calls", values.len(), calls.len())));
        }
        Ok(calls.iter().zip(values).map(|(c, v)| c.read(v)).collect())
    }

    /// Waits until `replicas` replicas have the writes made so far on this connection, at most
    /// `timeout`: WAITAOF (this server's and each replica's AOF synced; Redis/Valkey 7.2 and later) when
    /// `aof`, else WAIT. Returns how many did.
    pub fn wait_replicas(&mut self, replicas: u32, timeout: Duration, aof: bool) -> Result<u32, EngineError> {
        let ms = timeout.as_millis().max(1) as u64;
        if aof {
            let (_local, remote): (u32, u32) =
                redis::cmd("WAITAOF").arg(1).arg(replicas).arg(ms).query(&mut self.con)?;
            Ok(remote)
        } else {
            Ok(redis::cmd("WAIT").arg(replicas).arg(ms).query(&mut self.con)?)
        }
    }
}

fn is_noscript(r: &Result<Reply, EngineError>) -> bool {
    matches!(r, Err(EngineError::Server(m)) if m.starts_with("NOSCRIPT"))
}
