//! The spool's backend: `SPOOL` and the engine's settings, read through the same layers as
//! every other setting (flag, environment, env file, default) and recorded for
//! `--check-config`; the engine layer parses them ([`crate::engine::redis::settings`]).
//!
//! The time settings (LEASE, RESULT_TTL, SPOOL_TIMEOUT) are held to their ranges whatever
//! `SPOOL` says, as every time setting is; the rest only matters with an engine.

use std::time::Duration;

use super::{ConfigError, Resolver};
use crate::engine::redis::settings::{self, Settings};

/// The string settings of the backend, in the order `--check-config` shows them.
const NAMES: [&str; 4] = ["SPOOL", "SPOOL_PASSWORD_FILE", "SPOOL_PREFIX", "SPOOL_CONSUMER"];
/// Its time settings.
const TIMES: [&str; 3] = ["LEASE", "RESULT_TTL", "SPOOL_TIMEOUT"];

/// The engine's settings, or `None` for the folders. `heartbeat`: the HEARTBEAT_INTERVAL of
/// a worker (LEASE derives from it and must exceed it); `None` for the listener and
/// watcherctl, which hold no lease.
pub(super) fn settings(
    r: &mut Resolver,
    heartbeat: Option<Duration>,
) -> Result<Option<Settings>, ConfigError> {
    let mut raw: Vec<(&'static str, String)> = Vec::new();
    for name in NAMES {
        if let Some(v) = r.get(name, |s| Ok(s.to_string()))? {
            raw.push((name, v));
        }
    }
    for name in TIMES {
        // The range is checked here; the engine layer reads the same text again.
        if r.secs(name)?.is_some() {
            if let Some((v, _)) = r.raw(name) {
                raw.push((name, v));
            }
        }
    }
    let credentials = r.layers.env.get("CREDENTIALS_DIRECTORY").cloned();
    let get = |name: &str| -> Option<String> {
        if name == "CREDENTIALS_DIRECTORY" {
            return credentials.clone();
        }
        raw.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    };
    settings::settings(&get, &hostname(), heartbeat)
}

/// The host's name: the default consumer name (SPOOL_CONSUMER).
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}
