//! The listener's state file, `ROOT/listener/state.json`: per worker what was taken (its
//! cursor), what was counted, and what was announced of its health; the open batches; the
//! events written. It is rewritten durably (temp file, sync, rename, folder sync) after the
//! events of a loop turn are durable, so that a restart resumes exactly where the last
//! commit left off: no count lost, no event repeated.
//!
//! Small by design: a few hundred bytes per worker, plus the open batches (bounded). Which
//! result of each task was taken is in the append-only logs of [`super::taken`], which the
//! state names (and commits) per worker.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::batches::Batches;
use super::counts::Counts;
use super::cursor::Cursor;
use super::health::Announced;
use super::taken::Mark;
use crate::error::Fatal;

pub const FILE: &str = "state.json";
/// The format written; a file of a later version is refused rather than misread.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerState {
    #[serde(default)]
    pub cursor: Cursor,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub health: Announced,
    /// Its log of the results taken, as this state commits it (see [`super::taken`]).
    #[serde(default)]
    pub taken: Mark,
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

/// What the state folder held at start-up.
#[derive(Debug)]
pub enum Loaded {
    State(Box<State>),
    /// No state file: the listener's first start here (or it was removed).
    Fresh,
}

/// Reads `dir/state.json`. A file that exists but cannot be read or parsed is an error:
/// starting from nothing would count everything again and announce what was announced. A
/// damaged file or one of a newer format needs an operator (78); an I/O error may pass.
pub fn load(dir: &Path) -> Result<Loaded, Fatal> {
    let path = dir.join(FILE);
    let bytes = match crate::spool::read::read(&path, crate::format::records::MAX_RECORD_BYTES) {
        Ok(b) => b,
        Err(e) if e.is_missing() => return Ok(Loaded::Fresh),
        Err(e) => {
            let message = format!("cannot read {}: {e}", path.display());
            return Err(match e {
                crate::spool::read::Error::Io(io) => Fatal::io(message, &io),
                // Something else than a file is there: an operator must remove it.
                _ => Fatal::Config(message),
            });
        }
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| {
        Fatal::Config(format!(
            "{} is damaged ({e}); move it away to start again from the folders (results are counted again, recent ones announced again)",
            path.display()
        ))
    })?;
    if state.version > VERSION {
        return Err(Fatal::Config(format!(
            "{} is of format {} (this listener writes {VERSION}): written by a newer version",
            path.display(),
            state.version
        )));
    }
    Ok(Loaded::State(Box::new(state)))
}

impl State {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn missing_is_fresh_damaged_is_an_error_and_a_state_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(load(dir.path()), Ok(Loaded::Fresh)));
        let mut s = State::default();
        s.workers.entry("marie".into()).or_default().counts.completed = 7;
        s.events_written.insert("task_completed".into(), 7);
        fs::write(dir.path().join(FILE), s.to_bytes()).expect("write");
        let Ok(Loaded::State(back)) = load(dir.path()) else { panic!("not loaded") };
        assert_eq!(*back, s);
        fs::write(dir.path().join(FILE), b"{\"version\":1,").expect("write");
        let e = load(dir.path()).expect_err("damaged");
        assert!(e.to_string().contains("damaged") && e.exit_code() == 78, "{e}");
        fs::write(dir.path().join(FILE), b"{\"version\":99}").expect("write");
        assert!(load(dir.path()).expect_err("newer").to_string().contains("newer"));
    }
}
