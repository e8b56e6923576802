//! Which names a worker may have. A worker's name becomes a folder or a file name in every
//! folder of the spool (`tasks/NAME/`, `triggers/NAME/`, `results/NAME/`, `dlq/NAME/`,
//! `heartbeats/NAME.json`, `pipes/NAME.pipe`, `prompts/NAME.md`), so it must be safe as one
//! and must not be a name the spool uses for itself.
//!
//! The one owner of this rule: the worker, the listener (WORKERS and the workers it finds)
//! and watcherctl all ask here.

use crate::format::task::is_valid_id;

/// What a name must look like.
pub const RULE: &str = "1-128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit";

/// Names of the spool's own, with the folder each would collide with: the spool's layout
/// owns them ([`crate::spool::layout::RESERVED`]).
pub use crate::spool::layout::RESERVED;

/// `Ok` when `name` may name a worker; else why not, in one line.
pub fn check(name: &str) -> Result<(), String> {
    if !is_valid_id(name) {
        return Err(format!("worker name {name:?} is invalid: expected {RULE}"));
    }
    match RESERVED.iter().find(|(r, _)| r.eq_ignore_ascii_case(name)) {
        Some((_, why)) => Err(format!("worker name {name:?} is reserved: {why}")),
        None => Ok(()),
    }
}

/// Whether `name` may name a worker.
pub fn is_allowed(name: &str) -> bool {
    check(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_collide_with_the_spool_are_refused() {
        for bad in
            ["orchestrator", "Orchestrator", "ORCHESTRATOR", ".inflight", ".rejected", ".retried", ".", ".."]
        {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check("orchestrator").expect_err("reserved").contains("reserved"));
        for good in ["marie", "orchestrator2", "my-worker.2", "listener"] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
    }
}
