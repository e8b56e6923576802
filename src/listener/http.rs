//! The host's scrape target inside the listener's loop: the socket systemd passed
//! (orchestrator-listener.socket, TCP 9090), else METRICS_LISTEN, else
//! `0.0.0.0:METRICS_PORT`. `/metrics` serves every worker's families and the listener's
//! own; `/healthz` says whether the listener itself is well (200) or not (503).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use mio::Token;

use super::exposition::{self, HostView, WorkerView};
use super::health::{self, HeartbeatReading, Verdict};
use super::{Listener, Live};
use crate::config::listener::ListenerConfig;
use crate::error::Fatal;
use crate::http::{Endpoint, Request, Response, Stats, JSON};
use crate::log::Logger;
use crate::metrics::CONTENT_TYPE;
use crate::sys::socket::{self, Addr};

/// Opens the endpoint, if metrics are on.
pub(super) fn open(
    cfg: &ListenerConfig,
    env: &BTreeMap<String, String>,
    log: &Logger,
) -> Result<Option<Endpoint>, Fatal> {
    let passed = socket::from_systemd().map_err(Fatal::Config)?;
    if !cfg.enable_metrics {
        if !passed.is_empty() {
            log.warn("ENABLE_METRICS=false: the socket systemd passed is not served (stop orchestrator-listener.socket)", &[]);
        }
        return Ok(None);
    }
    if !passed.is_empty() {
        return Endpoint::passed(passed).map(Some).map_err(Fatal::Config);
    }
    let (addr, var) = match &cfg.metrics_listen {
        Some(a) => (a.clone(), format!("METRICS_LISTEN={a}")),
        None => {
            let port = cfg.metrics_port;
            (Addr::Tcp(SocketAddr::from(([0, 0, 0, 0], port))), format!("METRICS_PORT={port}"))
        }
    };
    if env.contains_key("INVOCATION_ID") {
        log.warn(
            "run by systemd without a socket (orchestrator-listener.socket stopped?): binding the address itself, which PrivateNetwork=yes makes unreachable from outside",
            &[("ADDRESS", &addr)],
        );
    }
    let in_use =
        "address in use (a worker outside systemd on METRICS_PORT 9090?); set METRICS_LISTEN or METRICS_PORT";
    Endpoint::bind(addr, &var, in_use).map(Some).map_err(Fatal::Config)
}

impl Listener {
    pub(super) fn owns_http(&self, token: Token) -> bool {
        self.endpoint.as_ref().is_some_and(|e| e.server.owns(token))
    }

    pub(super) fn on_http(&mut self, token: Token) {
        let Some(mut ep) = self.endpoint.take() else { return };
        let stats = ep.server.stats();
        ep.server.ready(self.poll.registry(), token, &mut |req: &Request| self.respond(req, &stats));
        self.endpoint = Some(ep);
    }

    pub(super) fn http_deadline(&self) -> Option<Instant> {
        self.endpoint.as_ref().and_then(|e| e.server.next_deadline())
    }

    pub(super) fn expire_http(&mut self, now: Instant) {
        if let Some(ep) = self.endpoint.as_mut() {
            ep.server.expire(self.poll.registry(), now);
        }
    }

    pub(super) fn metrics_addresses(&self) -> Vec<String> {
        self.endpoint.as_ref().map(|e| e.server.addresses()).unwrap_or_default()
    }

    pub(super) fn close_endpoint(&mut self) {
        if let Some(ep) = self.endpoint.take() {
            ep.close();
        }
    }

    fn respond(&self, req: &Request, http: &Stats) -> Response {
        match req.path.as_str() {
            "/metrics" => req.read_only().unwrap_or_else(|| self.metrics_page(http)),
            "/healthz" => req.read_only().unwrap_or_else(|| self.health_page()),
            _ => Response::not_found(),
        }
    }

    fn metrics_page(&self, http: &Stats) -> Response {
        let o = &self.own;
        o.set_http(http);
        o.set_dropped(self.commands.dropped);
        o.workers.set(self.workers.len() as i64);
        o.unhealthy.set(self.state.workers.values().filter(|w| w.health.unhealthy).count() as i64);
        o.backlog.set(self.spool.backlog().results as i64);
        o.open_batches.set(self.state.batches.open_count() as i64);
        o.commands_queued.set(self.commands.queued() as i64);
        let unjudged =
            Verdict { problems: Vec::new(), message: String::new(), stale_in: None, since: 0.0, up: false };
        let views: Vec<WorkerView> = self
            .workers
            .iter()
            .filter_map(|(name, live)| {
                let ws = self.state.workers.get(name)?;
                Some(WorkerView {
                    name,
                    counts: &ws.counts,
                    hosts: self.host_views(live),
                    verdict: live.verdict.as_ref().unwrap_or(&unjudged),
                })
            })
            .collect();
        let mut families = exposition::derived(&views);
        families.extend(self.own.gather());
        match exposition::encode(families) {
            Ok(body) => Response::new(200, CONTENT_TYPE, body),
            Err(e) => Response::text(500, &format!("cannot encode the metrics: {e}")),
        }
    }

    /// Each host's heartbeat of a worker, judged now by the rule of its worker's
    /// (`health::judge`: `Beat::stale_limit`, `stopped`).
    fn host_views<'a>(&self, live: &'a Live) -> Vec<HostView<'a>> {
        let (now, wall) = (std::time::Instant::now(), crate::sys::clock::now_f64());
        let stale_after = self.cfg.tuning.stale_after;
        live.hosts
            .iter()
            .map(|h| {
                let age = h.fresh.map(|f| f.age(now));
                let up = health::judge(&h.reading, true, wall, age.unwrap_or(0.0), stale_after).up;
                let beat = match &h.reading {
                    HeartbeatReading::Beat(b) => Some(b),
                    _ => None,
                };
                HostView { host: &h.host, beat, age, up }
            })
            .collect()
    }

    /// Healthy: events and state are being written. The workers' health is in the body.
    fn health_page(&self) -> Response {
        let mut problems = Vec::new();
        if !self.staged.is_empty() {
            problems.push(format!("{} events cannot be written", self.staged.len()));
        } else if (self.state_dirty || self.spool.dirty()) && self.retry_io_at.is_some() {
            problems.push("the state cannot be written".to_string());
        }
        let unhealthy: Vec<&String> =
            self.state.workers.iter().filter(|(_, w)| w.health.unhealthy).map(|(n, _)| n).collect();
        let body = serde_json::json!({
            "healthy": problems.is_empty(),
            "workers": self.workers.len(),
            "unhealthy_workers": unhealthy,
            "backlog": self.spool.backlog().results,
            "problems": problems,
        });
        let status = if problems.is_empty() { 200 } else { 503 };
        Response::new(status, JSON, format!("{body}\n"))
    }
}
