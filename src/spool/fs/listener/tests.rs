//! What is particular to the folders: result files read as untrusted, and the cursor and the
//! log of results taken kept in the listener's state file. The behaviour every backend shares
//! is tested in [`crate::spool::tests`].

use std::fs;

use super::results::read;
use super::*;
use crate::format::summary::ResultReading;

#[test]
fn result_files_are_read_as_untrusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n);
    fs::write(p("a.json"), r#"{"status":"completed"}"#).expect("write");
    let Some(ResultReading::Result(s)) = read(&p("a.json"), "a.json") else { panic!("not read") };
    assert_eq!(s.task_id, "a", "the stem stands in for a missing id");
    std::os::unix::fs::symlink(p("a.json"), p("l.json")).expect("symlink");
    assert!(matches!(read(&p("l.json"), "l.json"), Some(ResultReading::Unreadable(_))), "never followed");
    nix::unistd::mkfifo(&p("f.json"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
    assert!(matches!(read(&p("f.json"), "f.json"), Some(ResultReading::Unreadable(_))), "never waited on");
    assert!(read(&p("none.json"), "none.json").is_none(), "gone");
}

#[test]
fn cursors_and_marks_go_into_the_state_and_other_fields_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = Layout::new(dir.path());
    let mut spool = FsListener::open(&layout).expect("open");
    spool.start(true).expect("start");
    spool.follow("marie", false);
    let state = serde_json::json!({"version": 1, "workers": {"marie": {"counts": {"completed": 2}}}});
    spool.commit(state).expect("commit");
    let written: Value =
        serde_json::from_slice(&fs::read(layout.listener_state()).expect("read")).expect("json");
    assert_eq!(written["version"], 1);
    assert_eq!(written["workers"]["marie"]["counts"]["completed"], 2);
    assert!(written["workers"]["marie"]["cursor"].is_object(), "{written}");
    assert!(written["workers"]["marie"]["taken"].is_object(), "{written}");
}

#[test]
fn a_damaged_cursor_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = Layout::new(dir.path());
    fs::create_dir_all(layout.listener()).expect("mkdir");
    fs::write(layout.listener_state(), r#"{"version":1,"workers":{"m":{"cursor":7}}}"#).expect("write");
    let mut spool = FsListener::open(&layout).expect("open");
    assert!(spool.load().expect("load").is_some());
    match spool.start(false) {
        Err(OpenError::Config(m)) => assert!(m.contains("is damaged"), "{m}"),
        other => panic!("expected a configuration error, got {:?}", other.err()),
    }
}

#[test]
fn a_second_listener_is_locked_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = Layout::new(dir.path());
    let _first = FsListener::open(&layout).expect("open");
    match FsListener::open(&layout) {
        Err(OpenError::Locked(m)) => assert!(m.contains("already running"), "{m}"),
        other => panic!("expected Locked, got {:?}", other.err().map(|e| e.to_string())),
    }
}
