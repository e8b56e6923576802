//! The agent's session across a task's runs, with the stand-in agent keeping a transcript per
//! session as Claude Code does: the flags reach it, a retry resumes and the transcript grows, a
//! session the agent lost is replaced by a fresh one, a reclaim after kill -9 resumes.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::util::*;

/// The sessions' transcripts of the stand-in, by session id: the prompts each run appended.
fn transcript(root: &Root, id: &str) -> Vec<String> {
    let path = root.state_dir().join("sessions").join(id);
    fs::read_to_string(path).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
}

/// (session id, resumed, outcome) of each run of a result.
fn runs(r: &Value) -> Vec<(String, bool, String)> {
    let runs = r["runs"].as_array().cloned().unwrap_or_default();
    runs.iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("session_id"), r["resumed"] == true, s("outcome"))
        })
        .collect()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).eq([8, 4, 4, 4, 12])
}

#[test]
fn the_session_flag_reaches_the_agent_named_claude() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("CLAUDE_ARGS", "")]);
    root.submit("marie", "s1", "env");
    let r = root.wait_result("marie", "s1");
    let out = r["output"].as_str().expect("text");
    let args = out.lines().find_map(|l| l.strip_prefix("ARGS=")).expect("args");
    let id = args.strip_prefix("--session-id ").expect("a new session");
    assert!(is_uuid(id), "{args}");
    assert_eq!(runs(&r), vec![(id.to_string(), false, "completed".to_string())]);
    let receipt = read_json(&root.path().join("triggers/marie/s1.json")).expect("receipt");
    assert_eq!(receipt["session_id"], id);
}

#[test]
fn a_retry_resumes_the_session_and_its_transcript_grows() {
    let root = Root::new();
    let state = root.state_dir().display().to_string();
    let env = [("FAKE_STATE_DIR", state.as_str()), ("INITIAL_RETRY_DELAY", "0.1")];
    let _w = Worker::start(&root, "marie", &env);
    root.submit("marie", "r1", "fail-once");
    let r = root.wait_result("marie", "r1");
    assert_eq!(r["status"], "completed", "{r}");
    let runs = runs(&r);
    let id = runs[0].0.clone();
    assert_eq!(
        runs,
        vec![(id.clone(), false, "exit_code".to_string()), (id.clone(), true, "completed".to_string())]
    );
    assert_eq!(r["agent"]["session_id"], id.as_str(), "the agent continued the same session");
    assert_eq!(transcript(&root, &id), ["fail-once", "fail-once"], "both runs in one conversation");
}

#[test]
fn a_session_the_agent_lost_falls_back_to_a_fresh_one() {
    let root = Root::new();
    let state = root.state_dir().display().to_string();
    let env = [("FAKE_STATE_DIR", state.as_str()), ("INITIAL_RETRY_DELAY", "0.1"), ("MAX_RETRIES", "1")];
    let w = Worker::start(&root, "marie", &env);
    // The first run fails and its transcript is gone (a cleaned HOME); the retry resumes, the
    // agent has no such session, a fresh one runs at once: a completed task, one retry used.
    root.submit("marie", "l1", "lose-session");
    let r = root.wait_result("marie", "l1");
    let runs = runs(&r);
    assert_eq!(runs.len(), 3, "{r}");
    let (first, fresh) = (runs[0].0.clone(), runs[2].0.clone());
    assert_eq!(runs[1], (first.clone(), true, "session_missing".to_string()));
    assert_ne!(fresh, first);
    assert!(is_uuid(&fresh), "{fresh}");
    assert_eq!(runs[2], (fresh.clone(), false, "completed".to_string()));
    assert_eq!((r["status"].as_str(), r["attempts"].as_u64()), (Some("completed"), Some(2)), "{r}");
    assert_eq!(transcript(&root, &fresh), ["lose-session"]);
    assert!(transcript(&root, &first).is_empty(), "lost");
    assert!(w.log_text().contains("the agent has lost the task's session"), "{}", w.log_text());
}

#[test]
fn a_task_reclaimed_after_kill_nine_resumes_its_session() {
    let root = Root::new();
    let state = root.state_dir().display().to_string();
    let env = [("FAKE_STATE_DIR", state.as_str())];
    let mut w = Worker::start(&root, "marie", &env);
    root.submit("marie", "k1", "hang-once");
    let receipt = root.path().join("triggers/marie/k1.json");
    let first = wait_for("the first run's receipt", || read_json(&receipt))["session_id"]
        .as_str()
        .expect("session")
        .to_string();
    wait_for("its transcript", || (transcript(&root, &first).len() == 1).then_some(()));
    w.kill9();
    // The task waits in flight; the next worker reclaims it and resumes the same session.
    assert!(root.inflight("marie").join("k1.json").exists());
    let _w = Worker::start(&root, "marie", &env);
    let r = root.wait_result("marie", "k1");
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["agent"]["session_id"], first.as_str());
    assert_eq!(runs(&r).last().cloned(), Some((first.clone(), true, "completed".to_string())));
    assert_eq!(transcript(&root, &first).len(), 2, "the reclaimed run continued the conversation");
    assert!(Path::new(&receipt).exists());
}

#[test]
fn dlq_retry_resumes_the_session_of_the_dead_lettered_runs() {
    let root = Root::new();
    let state = root.state_dir().display().to_string();
    let env = [("FAKE_STATE_DIR", state.as_str()), ("MAX_RETRIES", "0")];
    let _w = Worker::start(&root, "marie", &env);
    root.submit("marie", "d1", "fail-once");
    let failed = root.wait_result("marie", "d1");
    assert_eq!(failed["status"], "failed");
    let id = runs(&failed)[0].0.clone();
    let letter = wait_for("the dead letter", || root.dlq("marie").first().cloned());
    assert_eq!(letter["session"]["id"], id.as_str(), "{letter}");
    crate::support::ctl::ctl(&root, &["dlq", "retry", "marie", "d1"]).expect(0);
    let r =
        wait_for("the retry's result", || root.result("marie", "d1").filter(|r| r["status"] == "completed"));
    assert_eq!(runs(&r).last().cloned(), Some((id.clone(), true, "completed".to_string())), "{r}");
    assert_eq!(transcript(&root, &id), ["fail-once", "fail-once"]);
}
