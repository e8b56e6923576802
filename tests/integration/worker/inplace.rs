//! Producers that write a task in place (open, write, close) are never punished: a file that
//! is not whole yet when the queue is listed (start-up, a rescan) is left in the queue and
//! looked at again; and a task rejected as invalid may be submitted again, corrected.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::support::ctl::{ctl, patience};
use crate::support::sys::root_or_skip;
use crate::support::util::*;

const NOBODY: u32 = 65534;

/// The first half of a task, written in place and held open.
fn half_written(queue: &Path, name: &str, id: &str) -> File {
    fs::create_dir_all(queue).expect("queue");
    let mut f = File::create(queue.join(name)).expect("create");
    f.write_all(format!("{{\"task_id\": \"{id}\", \"descr").as_bytes()).expect("write");
    f
}

fn finish_writing(mut f: File) {
    f.write_all(b"iption\": \"hello\"}\n").expect("write");
}

/// The worker's looks at a file that is not whole yet, and whether it saw it open for writing
/// (`open`) or could not tell (`unknown`).
fn looks(w: &Worker, writing: &str) -> usize {
    let said = format!("\"open_for_writing\":\"{writing}\"");
    w.log_text().lines().filter(|l| l.contains("task file is not whole yet") && l.contains(&said)).count()
}

#[test]
fn a_file_held_open_half_written_waits_through_start_up_and_rescans() {
    let root = Root::new();
    let f = half_written(&root.queue("marie"), "slow.json", "slow");
    let env = [
        ("RESCAN_INTERVAL", "1"),
        ("TASK_QUIET_PERIOD", "0.2"),
        ("LOG_LEVEL", "DEBUG"),
        ("HEARTBEAT_INTERVAL", "0.1"),
    ];
    let mut w = Worker::start(&root, "marie", &env);
    // Judged at start-up, and again at each look since: the worker sees that it is open for
    // writing, however long it stays so.
    wait_for("three looks at the file", || (looks(&w, "open") >= 3).then_some(()));
    assert!(root.dlq("marie").is_empty() && root.results("marie").is_empty(), "{}", w.log_text());
    assert!(root.queue("marie").join("slow.json").exists(), "left in the queue, where its writer put it");
    root.wait_heartbeat("marie", "the held file counted as queued", |h| h["queue_size"] == 1);
    // A restart lists it again.
    assert!(w.stop().success());
    let w = Worker::start(&root, "marie", &env);
    wait_for("a look after the restart", || (looks(&w, "open") >= 1).then_some(()));
    finish_writing(f);
    assert_eq!(root.wait_result("marie", "slow")["status"], "completed");
    assert!(root.dlq("marie").is_empty());
}

#[test]
fn without_a_lease_a_file_waits_for_its_quiet_period() {
    if !root_or_skip("without_a_lease_a_file_waits_for_its_quiet_period") {
        return;
    }
    // The worker runs as another user than the file's owner: it cannot take a lease, so only
    // the file's quiet period tells whether its writer is done.
    let root = Root::new();
    fs::create_dir_all(root.path().join("heartbeats")).expect("mkdir");
    fs::create_dir_all(root.queue("marie")).expect("queue");
    chown_all(root.path(), NOBODY);
    let f = half_written(&root.queue("marie"), "slow.json", "slow");
    let env = [("RESCAN_INTERVAL", "1"), ("TASK_QUIET_PERIOD", "3600"), ("LOG_LEVEL", "DEBUG")];
    let mut w = Worker::start_as(&root, "marie", &env, NOBODY);
    wait_for("a look at the file", || (looks(&w, "unknown") >= 1).then_some(()));
    root.submit("marie", "probe", "hello");
    root.wait_result("marie", "probe");
    assert!(root.dlq("marie").is_empty(), "{}", w.log_text());
    finish_writing(f);
    assert_eq!(root.wait_result("marie", "slow")["status"], "completed");
    // What stays invalid once quiet is dead-lettered.
    assert!(w.stop().success());
    let w = Worker::start_as(&root, "marie", &[("TASK_QUIET_PERIOD", "0.3"), ("LOG_LEVEL", "DEBUG")], NOBODY);
    fs::write(root.queue("marie").join("junk.json"), "{\"task_id\": \"junk\", ").expect("w");
    let d = wait_for("the dead letter", || root.dlq("marie").into_iter().next());
    assert_eq!(d["reason"], "invalid", "{d}");
    assert!(looks(&w, "unknown") >= 1, "it was held first: {}", w.log_text());
}

fn chown_all(dir: &Path, uid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir)
        .status()
        .expect("chown");
    assert!(status.success());
}

#[test]
fn a_corrected_task_replaces_one_rejected_as_invalid() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "0.1")]);
    let mut rejected = 0;
    let mut invalid = |id: &str| {
        root.submit_json("marie", id, &json!({"task_id": id}));
        let r =
            wait_for("the invalid result", || root.result("marie", id).filter(|r| r["reason"] == "invalid"));
        assert_eq!(r["status"], "failed");
        // Done with it: counted once its dead letter is written and its file gone.
        rejected += 1;
        root.wait_heartbeat("marie", "the rejection counted", |h| h["dead_lettered"] == rejected);
    };
    // A new task file of the same id.
    invalid("fix1");
    root.submit_json("marie", "fix1", &json!({"task_id": "fix1", "description": "hello"}));
    let r =
        wait_for("fix1 completed", || root.result("marie", "fix1").filter(|r| r["status"] == "completed"));
    assert_eq!(r["output"]["result"], "hello");
    // watcherctl submit of the same id.
    invalid("fix2");
    let p = patience();
    let r =
        ctl(&root, &["submit", "marie", "again", "--id", "fix2", "--wait", "--wait-timeout", &p, "--json"]);
    assert_eq!(r.expect(0).json()["status"], "completed");
    // The invalid dead letters stay, as the record of the rejected files.
    let letters = root.dlq("marie");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters.iter().all(|l| l["reason"] == "invalid"));
}

#[test]
fn dlq_retry_takes_a_file_whose_writer_finished_it_after_it_was_dead_lettered() {
    let root = Root::new();
    let f = half_written(&root.queue("marie"), "late.json", "late");
    // No quiet period: the half-written file is judged at once, as before.
    let _w = Worker::start(&root, "marie", &[("TASK_QUIET_PERIOD", "0")]);
    let d = wait_for("the dead letter", || root.dlq("marie").into_iter().next());
    assert_eq!(d["reason"], "invalid", "{d}");
    // Its writer goes on and finishes it: the file kept beside the dead letter is whole now.
    finish_writing(f);
    let r = ctl(&root, &["dlq", "retry", "marie", "late"]).expect(0);
    assert!(r.stdout.contains("queued again"), "{r:#?}");
    let r =
        wait_for("late completed", || root.result("marie", "late").filter(|r| r["status"] == "completed"));
    assert_eq!(r["output"]["result"], "hello");
    // Still invalid: refused, and says why.
    root.submit_json("marie", "nodesc", &json!({"task_id": "nodesc"}));
    wait_for("its dead letter", || root.dlq("marie").into_iter().find(|d| d["task_id"] == "nodesc"));
    let r = ctl(&root, &["dlq", "retry", "marie", "nodesc"]).expect(65);
    assert!(r.stderr.contains("\"description\" is missing"), "{r:#?}");
}
