//! Nothing a producer can leave in the spool hangs a daemon or watcherctl: a FIFO where a
//! program expects a file is refused at once, by name, and stdin is read only up to the limit.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::ctl::{ctl, finish, CTL};
use crate::support::util::*;

fn fifo(path: &Path) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

#[test]
fn a_fifo_as_the_spend_ledger_neither_blocks_the_start_nor_the_stop() {
    let root = Root::new();
    let ledger = root.queue("marie").join(".spend.json");
    fifo(&ledger);
    // No spend cap: the ledger is not read at all.
    let mut w = Worker::start(&root, "marie", &[]);
    root.submit("marie", "t1", "hello");
    assert_eq!(root.wait_result("marie", "t1")["status"], "completed");
    assert!(w.stop().success(), "{}", w.log_text());
    // A spend cap: the ledger is read, and the FIFO refused by name.
    let mut w = Worker::start(&root, "marie", &[("WORKER_BUDGET_USD", "5")]);
    wait_for("a warning naming the ledger", || {
        let log = w.log_text();
        (log.contains(&ledger.display().to_string()) && log.contains("FIFO")).then_some(())
    });
    root.submit("marie", "t2", "hello");
    assert_eq!(root.wait_result("marie", "t2")["status"], "completed");
    assert!(w.stop().success(), "{}", w.log_text());
}

#[test]
fn a_fifo_as_the_system_prompt_does_not_stop_the_loop() {
    let root = Root::new();
    let prompt = root.path().join("prompts").join("marie.md");
    fifo(&prompt);
    let mut w = Worker::start(&root, "marie", &[("HEARTBEAT_INTERVAL", "0.2")]);
    root.submit("marie", "t1", "hello");
    assert_eq!(root.wait_result("marie", "t1")["status"], "completed");
    let log = w.log_text();
    assert!(log.contains("cannot read the worker's system prompt") && log.contains("FIFO"), "{log}");
    // The loop still turns: heartbeats keep coming.
    let seen = root.heartbeat("marie").expect("heartbeat")["timestamp"].as_f64().expect("timestamp");
    root.wait_heartbeat("marie", "a newer heartbeat", |h| h["timestamp"].as_f64() > Some(seen));
    assert!(w.stop().success(), "{}", w.log_text());
}

#[test]
fn watcherctl_refuses_a_fifo_by_name_instead_of_waiting_on_it() {
    let root = Root::new();
    fs::create_dir_all(root.queue("marie")).expect("queue");
    let named = |r: &crate::support::ctl::Ran, path: &Path| {
        assert!(r.stderr.contains(&path.display().to_string()) && r.stderr.contains("FIFO"), "{r:#?}");
    };
    let heartbeat = root.path().join("heartbeats").join("marie.json");
    fifo(&heartbeat);
    let r = ctl(&root, &["status"]).expect(0);
    named(&r, &heartbeat);
    assert!(r.stdout.contains("unreadable"), "{r:#?}");
    let r = ctl(&root, &["status", "--json"]).expect(0);
    assert_eq!(r.json()[0]["state"], "unreadable", "{r:#?}");

    let result = root.path().join("results").join("marie").join("t1.json");
    fifo(&result);
    named(&ctl(&root, &["result", "marie", "t1"]).expect(74), &result);

    let letter = root.path().join("dlq").join("marie").join("t2.json");
    fifo(&letter);
    named(&ctl(&root, &["dlq", "list", "marie"]).expect(74), &letter);
    named(&ctl(&root, &["dlq", "show", "marie", "t2"]).expect(74), &letter);

    let events = root.events_dir();
    let event = events.join("0001-e.json");
    fifo(&event);
    let good = json!({"id": "0002-e", "event": "task_completed", "worker": "marie", "task_id": "t3",
        "time": "2026-01-01T00:00:00.000Z", "status": "completed"});
    fs::write(events.join("0002-e.json"), good.to_string()).expect("event");
    let r = ctl(&root, &["events", "--json"]).expect(74);
    named(&r, &event);
    assert!(r.stdout.contains("\"t3\""), "the readable events are printed: {r:#?}");

    // The root's env file is read by every command: a setting that cannot be read.
    let env = root.path().join(".env");
    fifo(&env);
    named(&ctl(&root, &["status"]).expect(78), &env);
}

#[test]
fn submit_stops_reading_stdin_at_the_task_size_limit() {
    let root = Root::new();
    fs::create_dir_all(root.queue("marie")).expect("queue");
    fs::write(root.path().join(".env"), "MAX_TASK_BYTES=4096\n").expect("env");
    // An endless producer: watcherctl must stop reading, not wait for an end.
    let mut yes = Command::new("yes").stdout(Stdio::piped()).spawn().expect("spawn yes");
    let mut cmd = Command::new(CTL);
    cmd.arg("--root")
        .arg(root.path())
        .args(["submit", "marie", "-"])
        .env_clear()
        .stdin(yes.stdout.take().expect("yes stdout"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A bound on its memory, so that a watcherctl that reads everything fails here instead
    // of taking the machine's.
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let lim = libc::rlimit { rlim_cur: 1 << 30, rlim_max: 1 << 30 };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let r = finish(cmd.spawn().expect("spawn watcherctl"));
    let _ = yes.kill();
    let _ = yes.wait();
    let r = r.expect(2);
    assert!(r.stderr.contains("standard input") && r.stderr.contains("MAX_TASK_BYTES=4096"), "{r:#?}");
    assert!(names(&root.queue("marie")).is_empty(), "nothing was queued");
}
