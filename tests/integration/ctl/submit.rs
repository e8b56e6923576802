//! `watcherctl submit`: atomic queueing, --wait, ids, stdin, refusals.

use std::fs;
use std::process::Stdio;

use crate::support::ctl::*;
use crate::support::util::*;

#[test]
fn submit_wait_returns_the_result_of_a_running_worker() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[]);
    let p = patience();
    let r =
        ctl(&root, &["submit", "marie", "Echo hello", "--wait", "--wait-timeout", &p, "--json"]).expect(0);
    let result = r.json();
    assert_eq!(result["status"], "completed", "{result}");
    assert_eq!(result["output"]["result"], "Echo hello");
    // A generated id: UTC time of the submit and 8 hex digits.
    let id = result["task_id"].as_str().expect("task_id");
    let (stamp, random) = id.split_once('-').expect("two parts");
    assert_eq!((stamp.len(), &stamp[8..9], &stamp[15..]), (16, "T", "Z"), "{id}");
    assert!(random.len() == 8 && random.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(root.result("marie", id).expect("on disk"), result);
    // Readable form: the id first, then the outcome.
    let r = ctl(&root, &["submit", "marie", "again", "--id", "h1", "--wait", "--wait-timeout", &p]).expect(0);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("h1"));
    assert!(r.stdout.contains("\nstatus     completed\n"), "{}", r.stdout);
    assert!(r.stdout.contains("\noutput     again\n"), "{}", r.stdout);
}

#[test]
fn description_from_stdin_and_fields_from_flags() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[]);
    let p = patience();
    let args = [
        "submit",
        "marie",
        "-",
        "--id",
        "s1",
        "--timeout",
        "30",
        "--max-retries",
        "1",
        "--meta",
        "batch=b1",
        "--meta",
        "batch_size:=2",
        "--wait",
        "--wait-timeout",
        &p,
        "--json",
    ];
    let r = ctl_with_input(&root, &args, "from stdin\nand a second line\n").expect(0).json();
    assert_eq!(r["output"]["result"], "from stdin", "the agent got the description on stdin: {r}");
    assert_eq!(r["metadata"], serde_json::json!({"batch": "b1", "batch_size": 2}));
}

#[test]
fn an_unknown_worker_is_refused_unless_created() {
    let root = Root::new();
    let r = ctl(&root, &["submit", "nobody", "hello"]).expect(69);
    assert!(r.stderr.contains("--create"), "{r:?}");
    assert!(!root.queue("nobody").exists(), "nothing made for a typo");
    ctl(&root, &["result", "nobody", "x"]).expect(69);
    ctl(&root, &["dlq", "list", "nobody"]).expect(69);
    let r = ctl(&root, &["submit", "nobody", "hello", "--create", "--id", "c1"]).expect(0);
    assert_eq!(r.stdout, "c1\n");
    let task = read_json(&root.queue("nobody").join("c1.json")).expect("queued task");
    assert_eq!(task, serde_json::json!({"task_id": "c1", "description": "hello", "worker": "nobody"}));
    let leftovers: Vec<_> = fs::read_dir(root.queue("nobody")).expect("ls").filter_map(|e| e.ok()).collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    // Known now, by its queue: no --create needed.
    ctl(&root, &["submit", "nobody", "again"]).expect(0);
}

#[test]
fn wait_timeout_gives_75() {
    let root = Root::new();
    ctl(&root, &["submit", "idle", "x", "--create", "--id", "t1"]).expect(0);
    let r =
        ctl(&root, &["submit", "idle", "hello", "--id", "w1", "--wait", "--wait-timeout", "0.2", "--json"]);
    let r = r.expect(75);
    assert_eq!(r.json(), serde_json::json!({"task_id": "w1", "worker": "idle", "status": "pending"}));
    assert!(r.stderr.contains("no result for w1"), "{r:?}");
    assert!(root.queue("idle").join("w1.json").exists(), "the task stays queued");
}

#[test]
fn invalid_tasks_and_taken_ids_are_refused() {
    let root = Root::new();
    ctl(&root, &["submit", "marie", "x", "--create", "--id", "dup"]).expect(0);
    let r = ctl(&root, &["submit", "marie", "x", "--id", "dup"]).expect(65);
    assert!(r.stderr.contains("already queued"), "{r:?}");
    let r = ctl(&root, &["submit", "marie", "x", "--id", "has space"]).expect(2);
    assert!(r.stderr.contains("task_id \"has space\" is invalid"), "{r:?}");
    ctl_with_input(&root, &["submit", "marie", "-"], " \n").expect(2);
    ctl(&root, &["submit", "marie", "x", "--meta", "novalue"]).expect(2);
    ctl(&root, &["submit", "marie", "x", "--timeout=0"]).expect(2);
    ctl(&root, &["submit", "bad/name", "x", "--create"]).expect(2);
    ctl(&root, &["submit", "marie", "x", "--wait-timeout", "1"]).expect(2);
    ctl(&root, &["submit", "marie", "x", "--wait", "--wait-timeout", "nan"]).expect(2);
    fs::write(root.path().join(".env"), "MAX_TASK_BYTES=100\n").expect("env");
    let r = ctl(&root, &["submit", "marie", &"x".repeat(200)]).expect(2);
    assert!(r.stderr.contains("MAX_TASK_BYTES=100"), "{r:?}");
    fs::write(root.path().join(".env"), "MAX_TASK_BYTES=lots\n").expect("env");
    let r = ctl(&root, &["status"]).expect(78);
    assert!(r.stderr.contains("MAX_TASK_BYTES"), "{r:?}");
    assert_eq!(names(&root.queue("marie")), vec!["dup.json"]);
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let root = Root::new();
    ctl(&root, &["submit", "marie", "x", "--create", "--id", "t1"]).expect(0);
    // A pipe whose reader is gone before watcherctl writes: its write fails with EPIPE.
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    let status = std::process::Command::new(CTL)
        .args(["--root", &root.path().display().to_string(), "status"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("watcherctl");
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert!(status.stderr.is_empty(), "{status:?}");
}
