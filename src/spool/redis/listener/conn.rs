//! One blocking connection that is made again after it fails, no more often than a backoff
//! allows, so a loop whose engine is down spends a failed call, not a connect time-out, per
//! turn.

use std::time::{Duration, Instant};

use crate::engine::redis::client::Engine;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::io::Backoff;
use crate::engine::redis::keys::Fleet;
use crate::engine::redis::ops::Call;
use crate::engine::redis::reply::Reply;
use crate::engine::redis::settings::Settings;

pub(super) struct Conn {
    settings: Settings,
    engine: Option<Engine>,
    backoff: Backoff,
    next_try: Instant,
    last_error: String,
}

impl Conn {
    pub(super) fn new(settings: &Settings, engine: Engine) -> Conn {
        Conn {
            settings: settings.clone(),
            engine: Some(engine),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            next_try: Instant::now(),
            last_error: String::new(),
        }
    }

    fn engine(&mut self) -> Result<&mut Engine, EngineError> {
        if self.engine.is_none() {
            if Instant::now() < self.next_try {
                return Err(EngineError::Connection(format!("not connected: {}", self.last_error)));
            }
            let s = &self.settings;
            match super::super::connect(s) {
                Ok((mut e, _)) => {
                    // The fleet's streams and groups may be new (an engine started empty).
                    if let Err(err) = e.ensure_fleet_groups(&Fleet::new(&s.prefix)) {
                        return Err(self.failed(err));
                    }
                    self.backoff.reset();
                    self.engine = Some(e);
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
        self.engine.as_mut().ok_or_else(|| EngineError::Connection("not connected".into()))
    }

    fn failed(&mut self, e: EngineError) -> EngineError {
        if e.needs_reconnect() || matches!(e, EngineError::Refused(_)) {
            self.engine = None;
            self.next_try = Instant::now() + self.backoff.step();
            self.last_error = e.to_string();
        }
        e
    }

    /// Whether it is connected now.
    pub(super) fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    pub(super) fn run(&mut self, call: &Call) -> Result<Reply, EngineError> {
        let r = self.engine()?.run(call);
        r.map_err(|e| self.failed(e))
    }

    pub(super) fn batch(&mut self, calls: &[Call]) -> Result<Vec<Result<Reply, EngineError>>, EngineError> {
        let r = self.engine()?.run_batch(calls);
        r.map_err(|e| self.failed(e))
    }
}
