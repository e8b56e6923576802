//! The named-pipe intake (PIPE_INTAKE=true): lines in, tasks run; bad and over-long lines
//! dead-lettered; a writer that closes leaves the worker idle.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde_json::json;

use crate::support::ctl::{ctl, patience};
use crate::support::util::*;

fn pipe_path(root: &Root, worker: &str) -> PathBuf {
    root.path().join("pipes").join(format!("{worker}.pipe"))
}

/// Opens the pipe (without waiting for a reader), writes `bytes`, and closes it.
fn write_pipe(root: &Root, worker: &str, bytes: &[u8]) {
    let mut pipe = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(pipe_path(root, worker))
        .expect("open the pipe: is the worker reading it?");
    pipe.write_all(bytes).expect("write the pipe");
}

/// CPU time the process used so far, in clock ticks (utime + stime of /proc/PID/stat).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn good_lines_run_and_bad_lines_are_dead_lettered() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("PIPE_INTAKE", "true")]);
    let meta = fs::metadata(pipe_path(&root, "marie")).expect("the pipe");
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o620);
    let lines = [
        json!({"task_id": "p1", "description": "hello from the pipe"}).to_string(),
        "this is not json".to_string(),
        json!({"task_id": "p2"}).to_string(),
        String::new(),
        json!({"task_id": "p3", "description": "also fine"}).to_string(),
    ];
    write_pipe(&root, "marie", format!("{}\n", lines.join("\n")).as_bytes());
    assert_eq!(root.wait_result("marie", "p1")["output"]["result"], "hello from the pipe");
    assert_eq!(root.wait_result("marie", "p3")["status"], "completed");
    let p2 = root.wait_result("marie", "p2");
    assert_eq!((p2["status"].as_str(), p2["reason"].as_str()), (Some("failed"), Some("invalid")));
    let dlq = wait_for("two dead letters", || Some(root.dlq("marie")).filter(|d| d.len() == 2));
    assert!(dlq.iter().all(|d| d["reason"] == "invalid"), "{dlq:?}");
    assert!(dlq.iter().any(|d| d["raw_preview"] == "this is not json"), "{dlq:?}");
    assert!(dlq.iter().any(|d| d["message"] == "\"description\" is missing"), "{dlq:?}");
}

#[test]
fn an_over_long_line_is_rejected_and_the_next_one_runs() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("PIPE_INTAKE", "true"), ("MAX_TASK_BYTES", "1000")]);
    let long = format!("{{\"task_id\": \"long\", \"description\": \"{}\"}}\n", "x".repeat(5000));
    let next = json!({"task_id": "after", "description": "hello"}).to_string();
    write_pipe(&root, "marie", format!("{long}{next}\n").as_bytes());
    assert_eq!(root.wait_result("marie", "after")["status"], "completed");
    let d = wait_for("the dead letter", || root.dlq("marie").into_iter().next());
    assert_eq!(d["reason"], "invalid");
    assert!(d["message"].as_str().expect("message").contains("longer than MAX_TASK_BYTES=1000"), "{d}");
    assert!(d["raw_preview"].as_str().expect("preview").starts_with("{\"task_id\": \"long\""), "{d}");
    assert_eq!(d["source_file"], "pipes/marie.pipe");
}

#[test]
fn a_writer_that_closes_does_not_spin_the_worker() {
    let root = Root::new();
    let w = Worker::start(&root, "marie", &[("PIPE_INTAKE", "true"), ("HEARTBEAT_INTERVAL", "0.2")]);
    for i in 0..3 {
        write_pipe(
            &root,
            "marie",
            format!("{}\n", json!({"task_id": format!("c{i}"), "description": "hi"})).as_bytes(),
        );
        root.wait_result("marie", &format!("c{i}"));
    }
    // Every writer has closed. An idle worker wakes for its heartbeats only; one that saw
    // end-of-file forever would burn a CPU between them.
    let heartbeat = |root: &Root| root.heartbeat("marie").and_then(|h| h["timestamp"].as_f64());
    let (start, ticks) = (wait_for("a heartbeat", || heartbeat(&root)), cpu_ticks(w.pid()));
    let end = wait_for("three more heartbeats", || heartbeat(&root).filter(|t| *t >= start + 0.6));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let used = (cpu_ticks(w.pid()) - ticks) as f64 / hz;
    assert!(used < (end - start) / 2.0, "the worker used {used} s of CPU in {} s idle", end - start);
    // And it keeps answering, by file and by pipe.
    root.submit("marie", "file-1", "hello");
    assert_eq!(root.wait_result("marie", "file-1")["status"], "completed");
    let p = patience();
    let r = ctl(&root, &["submit", "marie", "by pipe", "--pipe", "--wait", "--wait-timeout", &p, "--json"])
        .expect(0);
    assert_eq!(r.json()["output"]["result"], "by pipe");
}

#[test]
fn submit_pipe_needs_a_reading_worker_and_a_line_that_fits() {
    let root = Root::new();
    let mut w = Worker::start(&root, "marie", &[("PIPE_INTAKE", "true")]);
    let r = ctl(&root, &["submit", "marie", &"x".repeat(5000), "--pipe"]).expect(2);
    assert!(r.stderr.contains("without --pipe"), "{r:?}");
    assert!(w.stop().success());
    // The FIFO stays, but nobody reads it.
    let r = ctl(&root, &["submit", "marie", "hello", "--pipe"]).expect(69);
    assert!(r.stderr.contains("no worker reads"), "{r:?}");
    let _anga = Worker::start(&root, "anga", &[]);
    let r = ctl(&root, &["submit", "anga", "hello", "--pipe"]).expect(69);
    assert!(r.stderr.contains("PIPE_INTAKE"), "{r:?}");
}
