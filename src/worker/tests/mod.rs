//! The loop against the in-memory spool ([`crate::spool::mem`]) and agents that are not
//! processes ([`fake`]): the breaker, an outage's hold, the pauses, the spend cap, retries
//! against new tasks, the stop sequence. Each test drives the real loop turn by turn, with
//! timings of milliseconds, until what it waits for happens or a deadline passes.

mod cancel;
mod fake;
mod holds;
mod queue;
mod sessions;
mod timers;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::Events;
use signal_hook_mio::v1_0::Signals;

use super::Daemon;
use crate::config::{Config, Layers};
use crate::format::records::{Heartbeat, TaskResult};
use crate::log::{Format, Level, Logger, Sink};
use crate::spool::mem::{worker::Store, MemSpool};
use fake::{FakeAgents, Plan, Runs};

/// How long a test waits for what it expects before it fails.
const PATIENCE: Duration = Duration::from_secs(10);
const MS: fn(u64) -> Duration = Duration::from_millis;

/// A Claude result object: a success costing `usd`.
fn success(usd: f64) -> Plan {
    let out = format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":{usd}}}"#
    );
    Plan::exit(0, &out)
}

/// An error result of the API with this HTTP status (429: a rate limit; 401: credentials).
fn api_error(status: u16) -> Plan {
    let out = format!(
        r#"{{"type":"result","subtype":"success","is_error":true,"api_error_status":{status},"result":"API Error: {status}"}}"#
    );
    Plan::exit(1, &out)
}

fn failure() -> Plan {
    Plan { stderr: "boom".into(), ..Plan::exit(1, "") }
}

/// A worker loop over memory, with its store and its agents at hand.
struct Harness {
    d: Daemon,
    store: Rc<RefCell<Store>>,
    runs: Rc<RefCell<Runs>>,
    events: Events,
}

/// The worker's settings: `env` over fast defaults; `tune` changes the parsed ones (for
/// durations below what the variables accept).
fn config(env: &[(&str, &str)], tune: impl FnOnce(&mut Config)) -> Config {
    let mut layers = Layers::default();
    let base = [
        ("WATCHER_ROOT", "/nonexistent/worker-watcher-tests"),
        ("CLAUDE_COMMAND", "/bin/sh"),
        ("ENABLE_METRICS", "false"),
        ("PATH", "/usr/bin:/bin"),
        ("MAX_CONCURRENT_TASKS", "1"),
    ];
    for (k, v) in base.iter().chain(env) {
        layers.env.insert(k.to_string(), v.to_string());
    }
    let mut cfg = Config::load("marie", &layers).expect("config");
    let t = &mut cfg.tuning;
    t.initial_retry_delay = Duration::ZERO;
    t.max_retry_delay = MS(20);
    t.breaker_timeout = MS(40);
    t.breaker_max_timeout = MS(40);
    t.kill_grace = MS(20);
    t.shutdown_grace = MS(50);
    t.policy.rate_limit_pause = MS(60);
    tune(&mut cfg);
    cfg
}

impl Harness {
    fn new(cfg: Config, store: Rc<RefCell<Store>>, runs: Rc<RefCell<Runs>>) -> Harness {
        let spool = MemSpool::with_store(store.clone());
        let agents = FakeAgents { runs: runs.clone() };
        let log = Logger::new(Level::Warning, Format::Text, Sink::Stderr, "marie");
        let signals = Signals::new(std::iter::empty::<i32>()).expect("signals");
        let layers = Layers::default();
        let mut d =
            Daemon::with(cfg, layers, log, Box::new(spool), Box::new(agents), signals).expect("daemon");
        d.start_up().expect("start");
        Harness { d, store, runs, events: Events::with_capacity(64) }
    }

    /// A started worker: `env` and `tune` as [`config`], agents running `script`.
    fn start(
        env: &[(&str, &str)],
        tune: impl FnOnce(&mut Config),
        script: impl FnMut(&str, u32) -> Plan + 'static,
    ) -> Harness {
        let store = MemSpool::new().store();
        Harness::new(config(env, tune), store, FakeAgents::new(script).runs)
    }

    fn submit(&self, id: &str, description: &str) {
        let doc = serde_json::json!({"task_id": id, "description": description});
        self.store.borrow_mut().submit(id, doc.to_string().as_bytes());
    }

    /// Turns the loop until `done` says so; fails after PATIENCE.
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Harness) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
            self.d.step(&mut self.events, Some(MS(5))).expect("turn");
        }
    }

    fn result(&self, id: &str) -> Option<TaskResult> {
        self.store.borrow().results.get(id).cloned()
    }

    fn wait_result(&mut self, id: &str) -> TaskResult {
        self.until(&format!("the result of {id}"), |h| h.result(id).is_some());
        self.result(id).expect("result")
    }

    fn heartbeat(&self) -> Heartbeat {
        self.store.borrow().last_heartbeat().cloned().expect("a heartbeat")
    }

    fn starts(&self, id: &str) -> usize {
        self.runs.borrow().starts_of(id).len()
    }
}
