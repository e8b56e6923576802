//! The listener's state: per worker what was counted and what was announced of its health;
//! the open batches; the events written. It is committed with what the spool says was taken
//! (for the folders, `ROOT/listener/state.json` holds both) after the events of a loop turn
//! are durable, so that a restart resumes exactly where the last commit left off: no count
//! lost, no event repeated.
//!
//! Small by design: a few hundred bytes per worker, plus the open batches (bounded).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::batches::Batches;
use super::counts::Counts;
use super::health::Announced;
use crate::error::Fatal;
use crate::spool::listener::Saved;

/// The format written; a state of a later version is refused rather than misread.
pub const VERSION: u32 = 1;

/// What the listener keeps of a worker; the spool adds what it keeps of its own (the folders:
/// the cursor and the log of results taken) beside these fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub health: Announced,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// When it was written (seconds since the epoch).
    #[serde(default)]
    pub written_at: f64,
    #[serde(default)]
    pub workers: BTreeMap<String, WorkerState>,
    #[serde(default)]
    pub batches: Batches,
    /// Events written, by kind, since the state was first written.
    #[serde(default)]
    pub events_written: BTreeMap<String, u64>,
}

impl Default for State {
    fn default() -> State {
        State {
            version: VERSION,
            written_at: 0.0,
            workers: BTreeMap::new(),
            batches: Batches::default(),
            events_written: BTreeMap::new(),
        }
    }
}

/// What the spool held at start-up.
#[derive(Debug)]
pub enum Loaded {
    State(Box<State>),
    /// No state: the listener's first start here (or it was removed).
    Fresh,
}

/// Reads the state the spool kept. One that cannot be parsed is an error: starting from
/// nothing would count everything again and announce what was announced. A damaged state or
/// one of a newer format needs an operator (78).
pub fn load(saved: Option<Saved>) -> Result<Loaded, Fatal> {
    let Some(saved) = saved else {
        return Ok(Loaded::Fresh);
    };
    let state: State = serde_json::from_slice(&saved.bytes).map_err(|e| {
        Fatal::Config(format!(
            "{} is damaged ({e}); move it away to start again from the folders (results are counted again, recent ones announced again)",
            saved.at
        ))
    })?;
    if state.version > VERSION {
        return Err(Fatal::Config(format!(
            "{} is of format {} (this listener writes {VERSION}): written by a newer version",
            saved.at, state.version
        )));
    }
    Ok(Loaded::State(Box::new(state)))
}

impl State {
    /// The state as the spool commits it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(bytes: &[u8]) -> Option<Saved> {
        Some(Saved { at: "/s/listener/state.json".into(), bytes: bytes.to_vec() })
    }

    #[test]
    fn none_is_fresh_damaged_is_an_error_and_a_state_comes_back() {
        assert!(matches!(load(None), Ok(Loaded::Fresh)));
        let mut s = State::default();
        s.workers.entry("marie".into()).or_default().counts.completed = 7;
        s.events_written.insert("task_completed".into(), 7);
        let bytes = serde_json::to_vec(&s.to_value()).expect("json");
        let Ok(Loaded::State(back)) = load(saved(&bytes)) else { panic!("not loaded") };
        assert_eq!(*back, s);
        let e = load(saved(b"{\"version\":1,")).expect_err("damaged");
        assert!(e.to_string().contains("/s/listener/state.json is damaged") && e.exit_code() == 78, "{e}");
        assert!(load(saved(b"{\"version\":99}")).expect_err("newer").to_string().contains("newer"));
    }

    #[test]
    fn what_the_spool_keeps_beside_the_fields_is_ignored() {
        let bytes = br#"{"version":1,"workers":{"m":{"counts":{"completed":2},"cursor":{"floor_ns":5}}}}"#;
        let Ok(Loaded::State(s)) = load(saved(bytes)) else { panic!("not loaded") };
        assert_eq!(s.workers["m"].counts.completed, 2);
    }
}
