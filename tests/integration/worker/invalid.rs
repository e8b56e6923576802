//! Every malformed input lands in the dead-letter queue with its reason, while good tasks flow.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use serde_json::Value;

use crate::support::util::*;

fn by_source(dlq: &[Value], source: &str) -> Value {
    dlq.iter()
        .find(|d| d["source_file"] == source)
        .cloned()
        .unwrap_or_else(|| panic!("no dead letter for {source}: {dlq:?}"))
}

#[test]
fn malformed_inputs_are_dead_lettered_with_their_reason() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_TASK_BYTES", "4096")]);
    let q = root.queue("marie");
    root.submit("marie", "good-1", "hello");
    fs::write(q.join("notjson.json"), "this is not json").expect("w");
    fs::write(q.join("array.json"), "[1, 2, 3]").expect("w");
    fs::write(q.join("big.json"), format!("{{\"description\": \"{}\"}}", "x".repeat(5000))).expect("w");
    std::os::unix::fs::symlink("/etc/hostname", q.join("link.json")).expect("symlink");
    nix::unistd::mkfifo(&q.join("fifo.json"), nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    fs::create_dir(root.path().join("adir.json")).expect("dir");
    fs::rename(root.path().join("adir.json"), q.join("adir.json")).expect("mv dir");
    fs::write(q.join("badid.json"), r#"{"task_id": "has space", "description": "x"}"#).expect("w");
    fs::write(q.join("pathid.json"), r#"{"task_id": "../../etc/passwd", "description": "x"}"#).expect("w");
    fs::write(q.join("other.json"), r#"{"description": "x", "worker": "anga"}"#).expect("w");
    fs::write(q.join("nodesc.json"), r#"{"task_id": "nodesc"}"#).expect("w");
    fs::write(q.join(OsStr::from_bytes(b"bad\xffname.json")), r#"{"description": "x"}"#).expect("w");
    root.submit("marie", "good-2", "hello again");

    assert_eq!(root.wait_result("marie", "good-1")["status"], "completed");
    assert_eq!(root.wait_result("marie", "good-2")["status"], "completed");
    let dlq = wait_for("11 dead letters", || Some(root.dlq("marie")).filter(|d| d.len() == 11));
    for d in &dlq {
        assert_eq!(d["reason"], "invalid", "{d}");
    }
    let msg = |source: &str| by_source(&dlq, source)["message"].as_str().expect("message").to_string();
    assert!(msg("notjson.json").starts_with("not valid JSON"));
    assert_eq!(by_source(&dlq, "notjson.json")["raw_preview"], "this is not json");
    assert!(msg("array.json").contains("not a JSON object but an array"));
    assert!(msg("big.json").contains("larger than MAX_TASK_BYTES=4096"));
    assert!(msg("link.json").contains("symbolic link"));
    assert!(msg("fifo.json").contains("FIFO"));
    assert!(msg("adir.json").contains("directory"));
    assert!(msg("badid.json").contains("task_id \"has space\" is invalid"));
    assert!(msg("pathid.json").contains("task_id \"../../etc/passwd\" is invalid"));
    assert!(msg("other.json").contains("\"worker\" is \"anga\""));
    assert!(msg("nodesc.json").contains("\"description\" is missing"));
    assert!(msg("bad\u{fffd}name.json").contains("not valid UTF-8"));
    // Nothing lost: what is not quoted in the record is kept beside it.
    for source in ["big.json", "link.json", "fifo.json", "adir.json"] {
        let kept = by_source(&dlq, source)["original_file"].as_str().expect("original_file").to_string();
        // (Moved there once its dead letter is durable: a moment after the letter shows.)
        wait_for(&format!("{source} kept at {kept}"), || std::path::Path::new(&kept).symlink_metadata().ok());
    }
    // A usable id gets a failed result too, so a waiting producer hears back.
    let r = root.result("marie", "nodesc").expect("result for nodesc");
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), (Some("failed"), Some("invalid")));
    wait_for("empty queue and in-flight folders", || {
        (names(&q).is_empty() && names(&root.inflight("marie")).is_empty()).then_some(())
    });
}

#[test]
fn duplicate_ids_are_rejected_without_touching_the_original() {
    let root = Root::new();
    let _w = Worker::start(&root, "marie", &[("MAX_CONCURRENT_TASKS", "2")]);
    root.submit_json("marie", "first", &serde_json::json!({"task_id": "dup", "description": "sleep 1"}));
    wait_for("dup in flight", || root.path().join("triggers/marie/dup.json").exists().then_some(()));
    root.submit_json("marie", "second", &serde_json::json!({"task_id": "dup", "description": "hello"}));
    let d = wait_for("the duplicate's dead letter", || root.dlq("marie").into_iter().next());
    assert!(
        d["message"].as_str().expect("m").contains("duplicates a task that is queued or in flight"),
        "{d}"
    );
    let r = root.wait_result("marie", "dup");
    assert_eq!(r["output"]["result"], "sleep 1", "the original's result: {r}");
    // Once a result exists, the same id again is a duplicate too.
    root.submit_json("marie", "third", &serde_json::json!({"task_id": "dup", "description": "hello"}));
    wait_for("the second duplicate", || (root.dlq("marie").len() == 2).then_some(()));
    assert_eq!(root.result("marie", "dup").expect("r")["output"]["result"], "sleep 1");
}

#[test]
fn temp_files_and_other_names_are_left_alone() {
    let root = Root::new();
    let w = Worker::start(&root, "marie", &[]);
    let q = root.queue("marie");
    fs::write(q.join(".hidden.json"), "{}").expect("w");
    fs::write(q.join("partial.json.part"), "{").expect("w");
    fs::write(q.join("README"), "notes").expect("w");
    root.submit("marie", "after", "hello");
    root.wait_result("marie", "after");
    assert!(
        q.join(".hidden.json").exists() && q.join("partial.json.part").exists() && q.join("README").exists()
    );
    assert!(root.dlq("marie").is_empty());
    wait_for("a warning about README", || w.log_text().contains("not a task").then_some(()));
}
