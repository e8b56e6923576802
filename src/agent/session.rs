//! The agent's conversation across a task's attempts. Claude Code names a new session with
//! `--session-id <uuid>` and continues one with `--resume <uuid>` (AGENT_SESSION_FLAG,
//! AGENT_RESUME_FLAG): a retry after a timeout, a transient failure, a crash or `dlq retry`
//! goes on from where the last run got instead of paying for every token again.
//!
//! Each task has one session id at a time, kept in its state (`_watcher.session`). A task's
//! first id is a function of the task (a name-based UUID of the worker, the task id and when it
//! was queued), so a worker that was killed during the first run finds the same id again
//! without having written anything at the start of the run. An id given to an agent that was
//! started is `started`: the next run resumes it. The real CLI has created the session once it
//! started, even if its API call failed (tests/fixtures/claude/VERSION/sessions.json); when it
//! answers that the session does not exist (a run killed before it wrote anything, another
//! host, a cleaned HOME), the worker starts a fresh session with a new random id at once, not
//! charged to the task ([`is_missing`]).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use uuid::Uuid;

use crate::format::task::Session;

/// What Claude Code prints on stderr (and, with stream-json, in its result's `errors`) when
/// `--resume` names a session it does not have (2.1.197 and 2.1.332 alike).
const MISSING: &str = "No conversation found with session ID";

/// What it prints on stderr when `--session-id` names a session it has already.
const IN_USE: &str = "is already in use";

/// The first session id of task `id` of `worker`, queued at `queued_at`: the same for the same
/// task however often it is computed, another for a task of the same id queued again.
pub fn first_id(worker: &str, id: &str, queued_at: SystemTime) -> String {
    let ns = queued_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("worker-watcher session\0{worker}\0{id}\0{ns}");
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// A new random session id (a fresh session after the agent lost the last one).
pub fn fresh_id() -> String {
    Uuid::new_v4().to_string()
}

/// The session a task's next run uses: its own, or its first one when it has none yet.
pub fn current(state: Option<&Session>, worker: &str, id: &str, queued_at: SystemTime) -> Session {
    state.cloned().unwrap_or_else(|| Session { id: first_id(worker, id, queued_at), started: false })
}

/// Whether a run that resumed session `id` failed because the agent does not have it: its
/// stderr, or the `errors` of its result object, say so.
pub fn is_missing(stderr_tail: &str, result_object: Option<&Value>, id: &str) -> bool {
    let says = |text: &str| text.lines().any(|l| l.contains(MISSING) && l.contains(id));
    if says(stderr_tail) {
        return true;
    }
    let errors = result_object.and_then(|o| o.get("errors")).and_then(Value::as_array);
    errors.into_iter().flatten().filter_map(Value::as_str).any(says)
}

/// Whether a run asked to create session `id` failed because the agent has it already.
pub fn is_in_use(stderr_tail: &str, id: &str) -> bool {
    stderr_tail.lines().any(|l| l.contains("Session ID") && l.contains(id) && l.contains(IN_USE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn the_first_id_is_a_uuid_of_the_task() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_800_000_000_123_456_789);
        let a = first_id("marie", "t1", t);
        assert_eq!(a, first_id("marie", "t1", t), "found again after a crash");
        assert!(Uuid::parse_str(&a).is_ok_and(|u| u.get_version_num() == 5), "{a}");
        assert_ne!(a, first_id("marie", "t1", t + Duration::from_nanos(1)), "queued again");
        assert_ne!(a, first_id("anga", "t1", t));
        assert_ne!(a, first_id("marie", "t2", t));
        assert_ne!(fresh_id(), fresh_id());
        assert_eq!(Uuid::parse_str(&fresh_id()).map(|u| u.get_version_num()).ok(), Some(4));
    }

    /// Every recording of a resume of a missing session is one, and no other recording is.
    #[test]
    fn the_real_cli_missing_a_session() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude");
        let mut checked = 0;
        for version in ["2.1.197", "2.1.332"] {
            let dir = dir.join(version);
            let bytes = std::fs::read(dir.join("sessions.json")).expect("sessions.json");
            let manifest: Value = serde_json::from_slice(&bytes).expect("JSON");
            for step in manifest["steps"].as_array().expect("steps") {
                let read = |k: &str| {
                    step[k].as_str().map_or_else(String::new, |f| {
                        std::fs::read_to_string(dir.join(f)).expect("fixture file")
                    })
                };
                let (stdout, stderr) = (read("stdout"), read("stderr"));
                let out = crate::agent::interpret(stdout.as_bytes(), true);
                let flags = step["flags"].as_str().expect("flags");
                let id = flags.rsplit(' ').next().expect("an id");
                let missing = is_missing(&stderr, out.result_object.as_ref(), id);
                let name = step["case"].as_str().expect("case");
                assert_eq!(missing, name == "resume-missing", "{version} {}", step["stdout"]);
                assert_eq!(is_in_use(&stderr, id), name == "session-in-use", "{version} {}", step["stdout"]);
                // Only stdout's result object, without stderr, for stream-json.
                if name == "resume-missing" && step["mode"] == "stream-json" {
                    assert!(is_missing("", out.result_object.as_ref(), id), "{version}: errors");
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 24);
    }
}
