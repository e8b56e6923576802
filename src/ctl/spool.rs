//! `watcherctl spool import|export|check`: a worker's work moved between the folders and the
//! engine (crate::spool::migrate does the moving), and the engine's settings with the verdict
//! the daemons apply (crate::engine::redis::check).
//!
//! Exit statuses: 0 all moved (or nothing to move) / the engine is safe; 65 some records were
//! left where they were (the other side has another record of that id), each named on stderr;
//! 75 a worker runs on the side the work leaves; 74 the engine is unreachable or a file
//! cannot be read or written; 78 SPOOL names no engine, or the engine is unsafe.

use super::exit::{CtlError, CtlResult, CONFIG, IO, OK, REFUSED, TIMED_OUT};
use super::output::print;
use crate::config::Config;
use crate::engine::redis::check;
use crate::engine::redis::client::Engine;
use crate::engine::redis::settings::{Address, Settings};
use crate::spool::migrate::{self, Failure, Item, Outcome, What};

/// The engine SPOOL names; the folders have nothing to move to or check.
fn engine(cfg: &Config, doing: &str) -> Result<Settings, CtlError> {
    cfg.spool.clone().ok_or_else(|| {
        CtlError::new(
            CONFIG,
            format!("SPOOL is file (the folders): set SPOOL=redis://… to {doing} an engine"),
        )
    })
}

fn failure(f: Failure) -> CtlError {
    match f {
        Failure::Running(m) => CtlError::new(TIMED_OUT, m),
        Failure::Config(m) => CtlError::new(CONFIG, m),
        Failure::Io(m) => CtlError::new(IO, m),
    }
}

/// `spool import W` (`to_engine`) or `spool export W`.
pub fn migrate(cfg: &Config, worker: &str, to_engine: bool) -> CtlResult {
    super::check_name(worker)?;
    let settings = engine(cfg, if to_engine { "import into" } else { "export from" })?;
    let items = match to_engine {
        true => migrate::import(&cfg.paths, &settings, worker),
        false => migrate::export(&cfg.paths, &settings, worker),
    }
    .map_err(failure)?;
    report(&items, if to_engine { "imported to the engine" } else { "exported to the folders" })
}

fn report(items: &[Item], moved: &str) -> CtlResult {
    let mut text = String::new();
    let mut skipped = Vec::new();
    let count =
        |w: What, o: fn(&Outcome) -> bool| items.iter().filter(|i| i.what == w && o(&i.outcome)).count();
    for i in items {
        let kind = if i.what == What::Task { "task" } else { "dead letter" };
        match &i.outcome {
            Outcome::Moved => {
                let state = if i.with_state { " (with its saved state)" } else { "" };
                text.push_str(&format!("moved    {kind} {}{state}\n", i.name));
            }
            Outcome::Present => {
                text.push_str(&format!("present  {kind} {} (already there; its move finished)\n", i.name))
            }
            Outcome::Skipped(why) => {
                text.push_str(&format!("skipped  {kind} {}: {why}\n", i.name));
                skipped.push(i.name.clone());
            }
        }
    }
    let done = |o: &Outcome| !matches!(o, Outcome::Skipped(_));
    text.push_str(&format!(
        "{} tasks and {} dead letters {moved}; {} skipped\n",
        count(What::Task, done),
        count(What::DeadLetter, done),
        skipped.len()
    ));
    print(&text)?;
    match skipped.is_empty() {
        true => Ok(OK),
        false => Err(CtlError::new(REFUSED, format!("left where they were: {}", skipped.join(", ")))),
    }
}

/// `spool check`: the engine's settings and the daemons' verdict.
pub fn check(cfg: &Config) -> CtlResult {
    let settings = engine(cfg, "check")?;
    let at = crate::spool::redis::describe(&settings);
    let mut e = Engine::connect(&settings.target, settings.password.as_deref(), settings.timeout)
        .map_err(|e| CtlError::new(IO, format!("cannot reach the engine {at}: {e}")))?;
    let v =
        check::check(&mut e).map_err(|e| CtlError::new(IO, format!("cannot read the engine {at}: {e}")))?;
    let get = |e: &mut Engine, name: &str| -> String {
        redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query::<Vec<(String, String)>>(e.connection())
            .ok()
            .and_then(|p| p.into_iter().next().map(|(_, v)| v))
            .unwrap_or_else(|| "(unreadable)".into())
    };
    let sentinel = matches!(settings.target.address, Address::Sentinel { .. });
    let waits = match (sentinel, v.waitaof) {
        (true, true) => "WAITAOF 1 replica (every write the daemons acknowledge is on a replica's disk)",
        (true, false) => "WAIT 1 replica (every write the daemons acknowledge is on a replica)",
        (false, _) => "no (SPOOL is not redis-sentinel://: no failover, nothing to wait for)",
    };
    let mut rows = vec![
        ("engine", at.clone()),
        ("server", v.server.clone()),
        ("appendonly", get(&mut e, "appendonly")),
        ("appendfsync", v.appendfsync.clone()),
        ("maxmemory", get(&mut e, "maxmemory")),
        ("maxmemory-policy", get(&mut e, "maxmemory-policy")),
        ("replicas", v.replicas.to_string()),
        ("min-replicas-to-write", get(&mut e, "min-replicas-to-write")),
        ("writes wait", waits.to_owned()),
        ("WAITAOF", if v.waitaof { "available" } else { "not in this server (WAIT instead)" }.to_owned()),
    ];
    rows.extend(v.notes.iter().map(|n| ("note", n.clone())));
    match v.refusals.is_empty() {
        true => rows.push(("verdict", "safe: the daemons start on it".into())),
        false => rows.extend(v.refusals.iter().map(|r| ("verdict", format!("refused (exit 78): {r}")))),
    }
    let text: String = rows.iter().map(|(k, val)| format!("{k:<22}{val}\n")).collect();
    print(&text)?;
    match v.refusals.first() {
        None => Ok(OK),
        Some(r) => Err(CtlError::new(CONFIG, format!("SPOOL: {r}"))),
    }
}
