//! [`ControlSpool`]: workers known by a queue or a heartbeat, a task queued once and seen
//! until claimed, a result that wakes its waiter and is set aside, heartbeats, dead letters
//! (listed, retired, purged, with their originals), events in order and followed.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use super::{deadline, engine_suite, suite};
use crate::spool::control::{ControlSpool, Known, Pending, Queued, Stored};
use crate::spool::fs::control::FsControl;
use crate::spool::layout::{self, Layout};
use crate::spool::mem::{MemControl, Memory};

/// watcherctl's world: the backend, and what the daemons write.
pub(in crate::spool) trait Fixture {
    fn spool(&mut self) -> &mut dyn ControlSpool;
    /// A worker makes its queue.
    fn queue(&mut self, worker: &str);
    /// A worker claims the queued task `id`.
    fn claim(&mut self, worker: &str, id: &str);
    fn result(&mut self, worker: &str, id: &str, json: &str);
    fn heartbeat(&mut self, worker: &str, json: &str);
    /// A worker dead-letters a task as `name`, keeping `original` beside it.
    fn dead_letter(&mut self, worker: &str, name: &str, json: &str, original: Option<&str>);
    /// The listener writes an event.
    fn event(&mut self, id: &str, json: &str);
    /// A worker writes the receipt of task `id`'s start.
    fn receipt(&mut self, worker: &str, id: &str, json: &str);
}

/// The folders of a temp root.
pub(super) struct Fs {
    _dir: tempfile::TempDir,
    layout: Layout,
    spool: FsControl,
}

impl Fs {
    pub(super) fn new() -> Fs {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        Fs { _dir: dir, spool: FsControl::new(layout.clone()), layout }
    }
}

/// Writes `text` at `path` as the daemons do: a temp file renamed into place.
fn put(path: &Path, text: &str) {
    let dir = path.parent().expect("a folder");
    std::fs::create_dir_all(dir).expect("mkdir");
    let tmp = dir.join(".fixture.tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

impl Fixture for Fs {
    fn spool(&mut self) -> &mut dyn ControlSpool {
        &mut self.spool
    }

    fn queue(&mut self, worker: &str) {
        std::fs::create_dir_all(self.layout.inflight(worker)).expect("mkdir");
    }

    fn claim(&mut self, worker: &str, id: &str) {
        std::fs::rename(self.layout.queued(worker, id), self.layout.claimed(worker, id)).expect("claim");
    }

    fn result(&mut self, worker: &str, id: &str, json: &str) {
        put(&self.layout.result(worker, id), json);
    }

    fn heartbeat(&mut self, worker: &str, json: &str) {
        put(&self.layout.heartbeat(worker), json);
    }

    fn dead_letter(&mut self, worker: &str, name: &str, json: &str, original: Option<&str>) {
        let file = layout::record_name(name);
        let mut letter: serde_json::Value = serde_json::from_str(json).expect("json");
        if let Some(text) = original {
            let path = self.layout.worker_folders(worker).original(&file);
            put(&path, text);
            letter["original_file"] = path.display().to_string().into();
        }
        put(&self.layout.dlq(worker).join(file), &letter.to_string());
    }

    fn event(&mut self, id: &str, json: &str) {
        put(&self.layout.event(id), json);
    }

    fn receipt(&mut self, worker: &str, id: &str, json: &str) {
        put(&self.layout.receipt(worker, id), json);
    }
}

/// The spool in memory.
pub(super) struct Mem {
    spool: Memory,
    control: MemControl,
}

impl Mem {
    pub(super) fn new() -> Mem {
        let spool = Memory::new();
        Mem { control: spool.control(), spool }
    }
}

impl Fixture for Mem {
    fn spool(&mut self) -> &mut dyn ControlSpool {
        &mut self.control
    }

    fn queue(&mut self, worker: &str) {
        self.spool.make_queue(worker);
    }

    fn claim(&mut self, worker: &str, id: &str) {
        self.spool.claim(worker, id).expect("claimed");
    }

    fn result(&mut self, worker: &str, id: &str, json: &str) {
        self.spool.write_result(worker, id, json.as_bytes(), std::time::SystemTime::now());
    }

    fn heartbeat(&mut self, worker: &str, json: &str) {
        self.spool.write_heartbeat(worker, json.as_bytes());
    }

    fn dead_letter(&mut self, worker: &str, name: &str, json: &str, original: Option<&str>) {
        self.spool.write_dead_letter(worker, name, json.as_bytes(), original.map(str::as_bytes));
    }

    fn event(&mut self, id: &str, json: &str) {
        self.spool.write_event(id, json.as_bytes());
    }

    fn receipt(&mut self, worker: &str, id: &str, json: &str) {
        self.spool.write_receipt(worker, id, json.as_bytes());
    }
}

fn a_worker_is_known_by_its_queue_or_heartbeat(f: &mut impl Fixture) {
    assert_eq!(f.spool().known("marie"), Known::default());
    assert!(f.spool().workers().is_empty());
    f.spool().create_queue("marie").expect("create");
    assert!(f.spool().known("marie").accepts_tasks());
    f.heartbeat("anga", r#"{"timestamp": 1}"#);
    let anga = f.spool().known("anga");
    assert!(anga.heartbeat && !anga.queue && anga.any(), "{anga:?}");
    let workers: Vec<String> = f.spool().workers().into_iter().collect();
    assert_eq!(workers, ["anga", "marie"]);
}

fn a_task_is_queued_once_and_seen_until_claimed(f: &mut impl Fixture) {
    assert!(f.spool().enqueue("marie", "t1", b"{}".to_vec()).is_err(), "no queue");
    f.queue("marie");
    assert!(matches!(f.spool().enqueue("marie", "t1", b"{}".to_vec()), Ok(Queued::At(_))));
    assert_eq!(f.spool().pending("marie", "t1"), Some(Pending::Queued));
    assert_eq!(f.spool().queued("marie"), 1);
    assert_eq!(f.spool().enqueue("marie", "t1", b"{}".to_vec()).expect("refused"), Queued::Taken);
    f.claim("marie", "t1");
    assert_eq!(f.spool().pending("marie", "t1"), Some(Pending::InFlight));
    assert_eq!(f.spool().queued("marie"), 0);
    assert_eq!(f.spool().pending("marie", "t2"), None);
}

fn a_result_wakes_its_waiter_and_can_be_set_aside(f: &mut impl Fixture) {
    f.queue("marie");
    assert_eq!(f.spool().result("marie", "t1").expect("read"), None);
    let mut waiter = f.spool().watch_results("marie").expect("watch");
    let text = json!({"task_id": "t1", "status": "completed"}).to_string();
    f.result("marie", "t1", &text);
    assert!(waiter.wait(Some(deadline())).expect("wait"), "woken by the result");
    assert_eq!(f.spool().result("marie", "t1").expect("read"), Some(text.into_bytes()));
    assert!(!waiter.wait(Some(Instant::now())).expect("wait"), "nothing since");
    assert!(f.spool().result_exists("marie", "t1"));
    f.spool().set_aside_result("marie", "t1").expect("aside");
    assert!(!f.spool().result_exists("marie", "t1"));
    assert_eq!(f.spool().result("marie", "t1").expect("read"), None);
    assert!(f.spool().set_aside_result("marie", "t1").is_err(), "nothing to set aside");
}

fn tasks_are_listed_with_their_state_receipt_and_cancel_request(f: &mut impl Fixture) {
    f.queue("marie");
    assert!(f.spool().tasks("marie").expect("list").is_empty());
    let task = json!({"task_id": "t1", "description": "x", "_watcher": {"attempts": 1, "retry_at": 5.0}});
    f.spool().enqueue("marie", "t1", task.to_string().into_bytes()).expect("queued");
    f.spool().enqueue("marie", "t2", b"{}".to_vec()).expect("queued");
    f.claim("marie", "t1");
    let receipt = json!({"task_id": "t1", "worker": "marie", "claimed_at": "2026-01-01T00:00:00.000Z",
        "attempt": 2, "pid": 1, "agent_pid": 42, "hostname": "h", "task_file": "",
        "session_id": "5f1d", "resumed": true});
    f.receipt("marie", "t1", &receipt.to_string());
    f.spool().request_cancel("marie", "t2", "root@h").expect("request");
    f.spool().request_cancel("marie", "t2", "root@h").expect("asked again: the same request");
    let mut rows = f.spool().tasks("marie").expect("list");
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let t1 = &rows[0];
    assert_eq!((t1.id.as_str(), t1.pending, t1.cancel_requested), ("t1", Pending::InFlight, false));
    let state = t1.state.as_ref().expect("its saved state");
    assert_eq!((state.attempts, state.retry_at), (1, Some(5.0)));
    let r = t1.receipt.as_ref().expect("its receipt");
    assert_eq!((r.attempt, r.agent_pid, r.session_id.as_deref(), r.resumed), (2, 42, Some("5f1d"), true));
    let t2 = &rows[1];
    assert_eq!((t2.id.as_str(), t2.pending, t2.cancel_requested), ("t2", Pending::Queued, true));
    assert_eq!((t2.state.as_ref(), t2.receipt.as_ref()), (None, None));
    assert_eq!(rows.len(), 2);
}

fn heartbeats_are_read_as_they_are(f: &mut impl Fixture) {
    assert_eq!(f.spool().heartbeat("marie").expect("read"), None);
    f.heartbeat("marie", r#"{"timestamp": 2}"#);
    assert_eq!(f.spool().heartbeat("marie").expect("read"), Some(br#"{"timestamp": 2}"#.to_vec()));
}

fn names(letters: &[Stored]) -> Vec<String> {
    let mut names: Vec<String> = letters.iter().map(|l| l.name.clone()).collect();
    names.sort();
    names
}

fn dead_letters_are_listed_retired_and_purged_with_their_originals(f: &mut impl Fixture) {
    f.dead_letter("marie", "a", r#"{"task_id": "a", "reason": "timeout"}"#, None);
    f.dead_letter("marie", "b", r#"{"task_id": "b", "reason": "invalid"}"#, Some("not json"));
    f.dead_letter("marie", "c", r#"{"task_id": "c", "reason": "invalid"}"#, Some("{}"));
    let all = f.spool().dead_letters("marie").expect("list");
    assert_eq!(names(&all), ["a", "b", "c"]);
    let get = |name: &str| all.iter().find(|l| l.name == name).cloned().expect("letter");
    let (a, b, c) = (get("a"), get("b"), get("c"));
    let value: serde_json::Value = serde_json::from_slice(&b.bytes).expect("json");
    assert_eq!(value["reason"], "invalid");
    assert_eq!(f.spool().original("marie", &a, 1 << 20).expect("original"), None);
    assert_eq!(f.spool().original("marie", &b, 1 << 20).expect("original"), Some(b"not json".to_vec()));
    f.spool().retire("marie", &a).expect("retire");
    assert!(f.spool().retire("marie", &a).is_err(), "retired already");
    f.spool().drop_original("marie", &c);
    assert!(f.spool().original("marie", &c, 1 << 20).is_err(), "kept, and gone since");
    assert_eq!(names(&f.spool().dead_letters("marie").expect("list")), ["b", "c"]);
    f.spool().purge("marie", &[b.clone(), c]).expect("purge");
    assert!(f.spool().dead_letters("marie").expect("list").is_empty());
    assert!(f.spool().original("marie", &b, 1 << 20).is_err(), "gone with it");
}

fn events_come_in_order_once_and_can_be_followed(f: &mut impl Fixture) {
    let (a, b, c) =
        ("20260101T000000.000000001Z-a", "20260101T000000.000000002Z-b", "20260101T000000.000000003Z-c");
    f.event(b, r#"{"event": "b"}"#);
    f.event(a, r#"{"event": "a"}"#);
    let mut once = f.spool().events(false).expect("events");
    let read = once.next(false).expect("read");
    let names: Vec<&str> = read.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [a, b]);
    assert_eq!(read.events[1].value["event"], "b");
    assert!(once.next(false).expect("read").events.is_empty(), "each once");
    let mut follow = f.spool().events(true).expect("events");
    assert_eq!(follow.next(false).expect("read").events.len(), 2);
    f.event(c, r#"{"event": "c"}"#);
    let end = deadline();
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(Instant::now() < end, "the new event in time");
        got = follow.next(true).expect("read").events;
    }
    assert_eq!(got.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), [c]);
}

suite!(fs, super::Fs::new();
    a_worker_is_known_by_its_queue_or_heartbeat,
    a_task_is_queued_once_and_seen_until_claimed,
    a_result_wakes_its_waiter_and_can_be_set_aside,
    heartbeats_are_read_as_they_are,
    tasks_are_listed_with_their_state_receipt_and_cancel_request,
    dead_letters_are_listed_retired_and_purged_with_their_originals,
    events_come_in_order_once_and_can_be_followed,
);

suite!(mem, super::Mem::new();
    a_worker_is_known_by_its_queue_or_heartbeat,
    a_task_is_queued_once_and_seen_until_claimed,
    a_result_wakes_its_waiter_and_can_be_set_aside,
    heartbeats_are_read_as_they_are,
    tasks_are_listed_with_their_state_receipt_and_cancel_request,
    dead_letters_are_listed_retired_and_purged_with_their_originals,
    events_come_in_order_once_and_can_be_followed,
);

engine_suite!(redis, super::super::engine::Control::start;
    a_worker_is_known_by_its_queue_or_heartbeat,
    a_task_is_queued_once_and_seen_until_claimed,
    a_result_wakes_its_waiter_and_can_be_set_aside,
    heartbeats_are_read_as_they_are,
    tasks_are_listed_with_their_state_receipt_and_cancel_request,
    dead_letters_are_listed_retired_and_purged_with_their_originals,
    events_come_in_order_once_and_can_be_followed,
);
