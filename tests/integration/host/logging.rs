//! Where the log goes: the journal when LOG_TARGET=journal or when stderr is the journal
//! stream (JOURNAL_STREAM names it), stderr otherwise — and stderr again whenever the journal
//! cannot be reached. The journal side itself is proven by the system suite (tests/system/).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use worker_watcher::log::ids;

use crate::support::util::*;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn with_message<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["message"] == message).collect()
}

/// The fallback can only be seen where no journald listens (as on CI machines without
/// systemd as PID 1); elsewhere the entries would rightly go to the real journal.
fn journald_runs() -> bool {
    let runs = Path::new(JOURNAL_SOCKET).exists();
    if runs {
        eprintln!("skipped: journald listens on {JOURNAL_SOCKET} here");
    }
    runs
}

#[test]
fn stderr_lines_carry_the_message_id_of_key_events() {
    let root = Root::new();
    // A JOURNAL_STREAM inherited from elsewhere: stderr is a file, not that stream.
    let mut w = Worker::start(&root, "marie", &[("JOURNAL_STREAM", "1:1")]);
    root.submit("marie", "log-1", "hello");
    assert_eq!(root.wait_result("marie", "log-1")["status"], "completed");
    assert!(w.stop().success());
    let lines = json_lines(&w.log_text());
    let done = with_message(&lines, "task completed");
    assert_eq!(done.len(), 1, "{lines:?}");
    assert_eq!(done[0]["message_id"], ids::TASK_COMPLETED);
    assert_eq!(done[0]["task_id"], "log-1");
    assert_eq!(done[0]["attempt"], "1");
    assert_eq!(done[0]["exit_code"], "0");
    assert!(done[0]["duration_ms"].as_str().is_some_and(|d| d.parse::<u64>().is_ok()), "{:?}", done[0]);
    assert!(with_message(&lines, "cannot log to the journal").is_empty());
}

#[test]
fn journal_target_without_a_journal_falls_back_to_stderr() {
    if journald_runs() {
        return;
    }
    let root = Root::new();
    let mut w = Worker::start(&root, "marie", &[("LOG_TARGET", "journal")]);
    root.submit("marie", "log-2", "hello");
    assert_eq!(root.wait_result("marie", "log-2")["status"], "completed");
    assert!(w.stop().success());
    let lines = json_lines(&w.log_text());
    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("cannot log to the journal")))
        .collect();
    assert_eq!(warnings.len(), 1, "said once: {lines:?}");
    assert_eq!(warnings[0]["level"], "WARNING");
    let done = with_message(&lines, "task completed");
    assert_eq!(done.len(), 1, "{lines:?}");
    assert_eq!(done[0]["message_id"], ids::TASK_COMPLETED);
    assert_eq!(with_message(&lines, "stopped").len(), 1, "every line still logged");
}

#[test]
fn auto_picks_the_journal_when_journal_stream_names_stderr() {
    if journald_runs() {
        return;
    }
    let root = Root::new();
    let log = root.path().join("stderr.log");
    let file = fs::File::create(&log).expect("log");
    let meta = file.metadata().expect("stat");
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut child = command(&root, "marie", &[("JOURNAL_STREAM", &stream)])
        .stderr(file)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    // It tried the journal (there is none here) and said so on stderr, its fallback.
    let text = wait_for("the fallback warning", || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        text.contains("cannot log to the journal").then_some(text)
    });
    assert!(json_lines(&text).iter().all(|l| l["worker"] == "marie"), "{text}");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for("exit", || child.try_wait().expect("try_wait"));
    assert!(status.success());
}

#[test]
fn key_events_have_their_message_ids() {
    let root = Root::new();
    let mut w = Worker::start(
        &root,
        "marie",
        &[
            ("MAX_RETRIES", "1"),
            ("INITIAL_RETRY_DELAY", "0"),
            ("CIRCUIT_BREAKER_THRESHOLD", "2"),
            ("CIRCUIT_BREAKER_TIMEOUT", "1"),
            ("MAX_CONCURRENT_TASKS", "1"),
        ],
    );
    // Two failed attempts: a retry, then the task fails for good and the breaker opens.
    root.submit("marie", "ids-fail", "fail 3");
    assert_eq!(root.wait_result("marie", "ids-fail")["status"], "failed");
    // Held while the breaker is open; its success closes it.
    root.submit("marie", "ids-good", "hello");
    assert_eq!(root.wait_result("marie", "ids-good")["status"], "completed");
    fs::write(root.queue("marie").join("ids-bad.json"), "not json").expect("write");
    assert_eq!(root.wait_result("marie", "ids-bad")["reason"], "invalid");
    assert!(w.stop().success());
    let lines = json_lines(&w.log_text());
    let id_of = |message: &str| -> Vec<String> {
        with_message(&lines, message)
            .iter()
            .map(|l| l["message_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(id_of("attempt failed; retrying"), [ids::RETRY_SCHEDULED], "{lines:?}");
    assert_eq!(id_of("task failed and was dead-lettered"), [ids::TASK_FAILED]);
    assert_eq!(id_of("task rejected as invalid"), [ids::TASK_INVALID]);
    assert_eq!(id_of("task completed"), [ids::TASK_COMPLETED]);
    assert_eq!(id_of("circuit breaker closed"), [ids::BREAKER_CLOSED]);
    let opened: Vec<&Value> = lines.iter().filter(|l| l["message_id"] == ids::BREAKER_OPENED).collect();
    assert_eq!(opened.len(), 1, "{lines:?}");
    assert_eq!(opened[0]["level"], "ERROR");
    assert!(lines.iter().any(|l| l["message_id"] == ids::BREAKER_HALF_OPEN));
    let failed = &with_message(&lines, "task failed and was dead-lettered")[0];
    assert_eq!(
        (failed["task_id"].as_str(), failed["reason"].as_str()),
        (Some("ids-fail"), Some("exit_code"))
    );
    assert_eq!(failed["exit_code"], "3");
}

/// The old guide's troubleshooting one-liner, `… | grep ERROR`, finds exactly the error lines,
/// in both formats: the level is written in capitals, as Python's logging names it.
#[test]
fn grep_error_finds_the_error_lines_in_json_and_text() {
    for format in ["json", "text"] {
        let root = Root::new();
        let mut w = Worker::start(&root, "marie", &[("LOG_FORMAT", format), ("MAX_RETRIES", "0")]);
        root.submit("marie", "grep-ok", "hello");
        root.submit("marie", "grep-fail", "fail 3");
        assert_eq!(root.wait_result("marie", "grep-fail")["status"], "failed");
        assert_eq!(root.wait_result("marie", "grep-ok")["status"], "completed");
        assert!(w.stop().success());
        let out = std::process::Command::new("grep").arg("ERROR").arg(&w.log).output().expect("grep");
        let found = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = w.log_text();
        let is_error = |l: &str| match format {
            "json" => serde_json::from_str::<Value>(l).is_ok_and(|v| v["level"] == "ERROR"),
            _ => l.split_whitespace().nth(1) == Some("ERROR"),
        };
        let errors: Vec<&str> = text.lines().filter(|l| is_error(l)).collect();
        assert_eq!(found.lines().collect::<Vec<_>>(), errors, "LOG_FORMAT={format}:\n{text}");
        assert!(errors.len() == 1 && errors[0].contains("grep-fail"), "LOG_FORMAT={format}:\n{text}");
    }
}
