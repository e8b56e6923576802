//! The worker's metrics endpoint inside its loop: where it listens (the socket systemd
//! passed, else METRICS_LISTEN, else METRICS_PORT on all interfaces), what `/metrics` and
//! `/healthz` answer, and the health verdict both share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use mio::Token;

use super::{Daemon, Phase};
use crate::agent::classify::Cause;
use crate::config::Config;
use crate::error::Fatal;
use crate::format::records::Heartbeat;
use crate::http::{Endpoint, Request, Response, Stats, JSON};
use crate::log::Logger;
use crate::metrics::{self, CONTENT_TYPE};
use crate::sys::socket::{self, Addr};
use crate::worker::breaker::State;
use crate::worker::state::WorkerState;

/// Opens the endpoint. Under systemd (INVOCATION_ID set) without a passed socket, nothing
/// is bound unless METRICS_LISTEN says where: METRICS_PORT is the host's scrape target's
/// (orchestrator-listener.socket, 9090), which a worker must not take.
pub(super) fn open(
    cfg: &Config,
    env: &BTreeMap<String, String>,
    log: &Logger,
) -> Result<Option<Endpoint>, Fatal> {
    let passed = socket::from_systemd().map_err(Fatal::Config)?;
    if let (true, Some(pid)) = (passed.is_empty() && env.contains_key("LISTEN_FDS"), env.get("LISTEN_PID")) {
        log.info("LISTEN_FDS ignored: LISTEN_PID names another process", &[("LISTEN_PID", pid)]);
    }
    if !cfg.enable_metrics {
        if !passed.is_empty() {
            log.warn(
                "ENABLE_METRICS=false: the metrics socket systemd passed is not served (mask worker-watcher@NAME.socket)",
                &[],
            );
        }
        return Ok(None);
    }
    if !passed.is_empty() {
        return Endpoint::passed(passed).map(Some).map_err(Fatal::Config);
    }
    let (addr, var) = match &cfg.metrics_listen {
        Some(a) => (a.clone(), format!("METRICS_LISTEN={a}")),
        None if env.contains_key("INVOCATION_ID") => {
            log.warn(
                "run by systemd without a metrics socket (worker-watcher@NAME.socket masked or stopped?): metrics are off; set METRICS_LISTEN to bind an address anyway",
                &[],
            );
            return Ok(None);
        }
        None => {
            let port = cfg.metrics_port;
            (Addr::Tcp(SocketAddr::from(([0, 0, 0, 0], port))), format!("METRICS_PORT={port}"))
        }
    };
    let in_use = "address in use by another process; give each worker its own METRICS_PORT, or set METRICS_PORT=0 (any free port, written in the heartbeat), METRICS_LISTEN=/path/%i.sock, or ENABLE_METRICS=false";
    Endpoint::bind(addr, &var, in_use).map(Some).map_err(Fatal::Config)
}

impl Daemon {
    pub(super) fn owns_http(&self, token: Token) -> bool {
        self.sources.endpoint.as_ref().is_some_and(|e| e.server.owns(token))
    }

    pub(super) fn on_http(&mut self, token: Token) {
        let Some(mut ep) = self.sources.endpoint.take() else {
            return;
        };
        let stats = ep.server.stats();
        ep.server.ready(self.poll.registry(), token, &mut |req: &Request| self.respond(req, &stats));
        self.sources.endpoint = Some(ep);
    }

    pub(super) fn http_deadline(&self) -> Option<Instant> {
        self.sources.endpoint.as_ref().and_then(|e| e.server.next_deadline())
    }

    pub(super) fn expire_http(&mut self, now: Instant) {
        if let Some(ep) = self.sources.endpoint.as_mut() {
            ep.server.expire(self.poll.registry(), now);
        }
    }

    /// Where metrics are served, for the log and the heartbeat.
    pub(super) fn metrics_addresses(&self) -> Vec<String> {
        self.sources.endpoint.as_ref().map(|e| e.server.addresses()).unwrap_or_default()
    }

    /// At exit: the unix socket file this process bound goes with it.
    pub(super) fn close_endpoint(&mut self) {
        if let Some(ep) = self.sources.endpoint.take() {
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
        self.report.metrics.set_state(&self.metric_state());
        self.report.metrics.set_http(http);
        match self.report.metrics.encode() {
            Ok(body) => Response::new(200, CONTENT_TYPE, body),
            Err(e) => Response::text(500, &format!("cannot encode the metrics: {e}")),
        }
    }

    fn health_page(&self) -> Response {
        let problems = self.health_problems();
        let body = serde_json::json!({
            "healthy": problems.is_empty(),
            "worker": self.cfg.worker,
            "status": self.report.heartbeat_status.map_or("", WorkerState::as_str),
            "circuit_state": self.holds.breaker.state().name(),
            "heartbeat_age_seconds": self.report.heartbeat_written.elapsed().as_secs_f64(),
            "problems": problems,
        });
        let status = if problems.is_empty() { 200 } else { 503 };
        Response::new(status, JSON, format!("{body}\n"))
    }

    /// Why the worker is not healthy; empty when it is.
    fn health_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let State::Open { .. } = self.holds.breaker.state() {
            problems.push("circuit breaker open: no task starts".to_string());
        }
        // Its own last heartbeat, aged on the monotonic clock from when it was durable.
        let age = self.report.heartbeat_written.elapsed().as_secs_f64();
        let limit = self.stale_limit();
        if age > limit {
            problems.push(format!(
                "no heartbeat written for {age:.1} s (limit {limit:.1} s): the loop stalled or the spool cannot be written"
            ));
        }
        if matches!(self.phase, Phase::Draining { .. }) {
            problems.push("stopping".to_string());
        }
        problems
    }

    /// The age past which the worker's own heartbeat is stale.
    fn stale_limit(&self) -> f64 {
        Heartbeat::stale_limit(self.cfg.tuning.heartbeat_interval.as_secs_f64())
    }

    fn metric_state(&self) -> metrics::State {
        let now = SystemTime::now();
        let oldest = self.queue.order.iter().map(|(_, at)| *at).min();
        metrics::State {
            queue_size: self.queued(),
            active: self.flight.active,
            waiting_retry: self.flight.waiting.len(),
            max_concurrent: self.cfg.tuning.max_concurrent,
            breaker: self.holds.breaker.state().gauge(),
            oldest_queued_age: oldest
                .and_then(|t| now.duration_since(t).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            heartbeat_age: self.report.heartbeat_written.elapsed().as_secs_f64(),
            healthy: self.health_problems().is_empty(),
            up: !matches!(self.phase, Phase::Draining { .. })
                && self.report.heartbeat_written.elapsed().as_secs_f64() <= self.stale_limit(),
            credential_fault: self.holds.outage.as_ref().is_some_and(|o| o.cause == Cause::Credential)
                && matches!(self.holds.breaker.state(), State::Open { .. } | State::HalfOpen),
        }
    }
}
