//! [`ListenerSpool`]: results handed out once and kept taken by a commit, handed out again
//! after a restart without one, history counted and not announced, heartbeats and their
//! writes, workers that show up, events, the listener's state.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use mio::{Events, Poll, Token};
use serde_json::{json, Value};

use super::{deadline, engine_suite, suite};
use crate::format::summary::ResultReading;
use crate::spool::fs::listener::FsListener;
use crate::spool::layout::{self, Layout};
use crate::spool::listener::{Delivered, ListenerSpool, Notices, Outgoing, StoredHeartbeat, ONE_HOST};
use crate::spool::mem::Memory;

const DAY: Duration = Duration::from_secs(86_400);
const TOKEN: Token = Token(7);

/// The listener's world: it opens the backend, and writes what the workers write.
pub(in crate::spool) trait Fixture {
    /// The backend, opened anew (a restart; the one before is dropped first).
    fn open(&mut self) -> Box<dyn ListenerSpool>;
    /// A worker writes the result of `id`, finished at `finished`, at time `written`.
    fn result(&mut self, worker: &str, id: &str, finished: &str, written: SystemTime);
    fn heartbeat(&mut self, worker: &str, json: &str);
    /// The hosts a worker's heartbeats can come from: the one of a spool of one host, or
    /// several sharing an engine.
    fn hosts(&self) -> Vec<&'static str> {
        vec![ONE_HOST]
    }
    /// `host`'s worker writes a heartbeat (one of [`Fixture::hosts`]).
    fn host_heartbeat(&mut self, worker: &str, host: &str, json: &str) {
        assert_eq!(host, ONE_HOST, "a spool of one host");
        self.heartbeat(worker, json);
    }
    /// A worker makes its queue.
    fn queue(&mut self, worker: &str);
    /// The events written, by id.
    fn events(&self) -> BTreeMap<String, Value>;
}

fn result_json(id: &str, finished: &str) -> String {
    json!({"task_id": id, "worker": "w", "status": "completed", "finished_at": finished}).to_string()
}

/// The folders of a temp root.
pub(super) struct Fs {
    _dir: tempfile::TempDir,
    layout: Layout,
}

impl Fs {
    pub(super) fn new() -> Fs {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        Fs { _dir: dir, layout }
    }
}

/// Writes `text` at `path` as the daemons do: a temp file renamed into place.
fn put(path: &Path, text: &str, mtime: Option<SystemTime>) {
    let dir = path.parent().expect("a folder");
    std::fs::create_dir_all(dir).expect("mkdir");
    let tmp = dir.join(".fixture.tmp");
    std::fs::write(&tmp, text).expect("write");
    if let Some(t) = mtime {
        std::fs::File::options().write(true).open(&tmp).and_then(|f| f.set_modified(t)).expect("mtime");
    }
    std::fs::rename(&tmp, path).expect("rename");
}

impl Fixture for Fs {
    fn open(&mut self) -> Box<dyn ListenerSpool> {
        Box::new(FsListener::open(&self.layout).expect("open"))
    }

    fn result(&mut self, worker: &str, id: &str, finished: &str, written: SystemTime) {
        put(&self.layout.result(worker, id), &result_json(id, finished), Some(written));
    }

    fn heartbeat(&mut self, worker: &str, json: &str) {
        put(&self.layout.heartbeat(worker), json, None);
    }

    fn queue(&mut self, worker: &str) {
        std::fs::create_dir_all(self.layout.queue(worker)).expect("mkdir");
    }

    fn events(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(self.layout.events()).expect("events").flatten() {
            let name = entry.file_name().into_string().expect("utf-8");
            if let Some(id) = layout::record_stem(&name) {
                let value =
                    serde_json::from_slice(&std::fs::read(entry.path()).expect("read")).expect("json");
                out.insert(id.to_string(), value);
            }
        }
        out
    }
}

/// The spool in memory.
pub(super) struct Mem(Memory);

impl Mem {
    pub(super) fn new() -> Mem {
        Mem(Memory::new())
    }
}

impl Fixture for Mem {
    fn open(&mut self) -> Box<dyn ListenerSpool> {
        Box::new(self.0.listener())
    }

    fn result(&mut self, worker: &str, id: &str, finished: &str, written: SystemTime) {
        self.0.write_result(worker, id, result_json(id, finished).as_bytes(), written);
    }

    fn heartbeat(&mut self, worker: &str, json: &str) {
        self.0.write_heartbeat(worker, json.as_bytes());
    }

    fn queue(&mut self, worker: &str) {
        self.0.make_queue(worker);
    }

    fn events(&self) -> BTreeMap<String, Value> {
        let parse = |b: Vec<u8>| serde_json::from_slice(&b).expect("json");
        self.0.events().into_iter().map(|(id, b)| (id, parse(b))).collect()
    }
}

/// The backend opened and started as the listener does, registered with a poll of its own.
fn started(f: &mut impl Fixture) -> (Box<dyn ListenerSpool>, Poll) {
    let mut spool = f.open();
    spool.load().expect("load");
    spool.start(true).expect("start");
    let poll = Poll::new().expect("poll");
    spool.register(poll.registry(), TOKEN).expect("register");
    (spool, poll)
}

/// Drains and polls until `done` says the notices are enough.
fn wait_notices(spool: &mut dyn ListenerSpool, poll: &mut Poll, done: impl Fn(&Notices) -> bool) -> Notices {
    let end = deadline();
    let mut all = Notices::default();
    let mut events = Events::with_capacity(8);
    loop {
        let n = spool.drain();
        all.heartbeats.extend(n.heartbeats);
        all.appeared.extend(n.appeared);
        all.rescan |= n.rescan;
        if done(&all) {
            return all;
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "not heard of in time: {all:?}");
        poll.poll(&mut events, Some(left)).expect("poll");
    }
}

/// Takes results until there are `n`.
fn take(spool: &mut dyn ListenerSpool, poll: &mut Poll, n: usize) -> Vec<Delivered> {
    let end = deadline();
    let mut got = Vec::new();
    let mut events = Events::with_capacity(8);
    loop {
        spool.drain();
        got.extend(spool.results(512, DAY));
        if got.len() >= n {
            return got;
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "{} of {n} results in time", got.len());
        poll.poll(&mut events, Some(left)).expect("poll");
    }
}

fn ids(got: &[Delivered]) -> Vec<String> {
    got.iter()
        .map(|d| match &d.reading {
            ResultReading::Result(s) => s.task_id.clone(),
            ResultReading::Unreadable(why) => format!("unreadable: {why}"),
        })
        .collect()
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

fn results_are_handed_out_once_and_a_commit_keeps_them_taken(f: &mut impl Fixture) {
    f.result("marie", "t1", "2026-01-01T00:00:01Z", ago(2));
    f.result("marie", "t2", "2026-01-01T00:00:02Z", ago(1));
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    let got = take(spool.as_mut(), &mut poll, 2);
    assert_eq!(ids(&got), ["t1", "t2"], "oldest first");
    assert!(got.iter().all(|d| d.announce && !d.again && d.worker == "marie"), "{got:?}");
    assert!(got[0].written_ns < got[1].written_ns);
    assert!(spool.results(512, DAY).is_empty(), "once");
    assert!(spool.backlog().is_empty());
    assert!(spool.dirty(), "taken, not committed");
    spool.commit(json!({"version": 1, "note": "kept"})).expect("commit");
    assert!(!spool.dirty());
    drop(spool);
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    f.result("marie", "t3", "2026-01-01T00:00:03Z", SystemTime::now());
    assert_eq!(ids(&take(spool.as_mut(), &mut poll, 1)), ["t3"], "only what came since");
}

fn results_not_committed_are_handed_out_again_the_same(f: &mut impl Fixture) {
    f.result("marie", "t1", "2026-01-01T00:00:01Z", ago(1));
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    let first = take(spool.as_mut(), &mut poll, 1);
    drop(spool);
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    let again = take(spool.as_mut(), &mut poll, 1);
    assert_eq!(ids(&again), ["t1"]);
    // The same time and place: the listener names its event the same.
    assert_eq!((again[0].written_ns, &again[0].at), (first[0].written_ns, &first[0].at));
}

fn history_older_than_the_backfill_is_counted_not_announced(f: &mut impl Fixture) {
    f.result("marie", "old", "2026-01-01T00:00:01Z", ago(3 * 86_400));
    f.result("marie", "new", "2026-01-01T00:00:02Z", ago(1));
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    let got = take(spool.as_mut(), &mut poll, 2);
    let announced: Vec<(String, bool)> = ids(&got).into_iter().zip(got.iter().map(|d| d.announce)).collect();
    assert_eq!(announced, [("old".to_string(), false), ("new".to_string(), true)]);
}

fn a_new_result_of_a_task_is_a_new_result(f: &mut impl Fixture) {
    f.result("marie", "t1", "2026-01-01T00:00:01Z", ago(2));
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    take(spool.as_mut(), &mut poll, 1);
    spool.commit(json!({})).expect("commit");
    // Retried: the worker ran it again and wrote a new result.
    f.result("marie", "t1", "2026-01-02T00:00:01Z", SystemTime::now());
    let got = take(spool.as_mut(), &mut poll, 1);
    let ResultReading::Result(s) = &got[0].reading else { panic!("{got:?}") };
    assert_eq!(s.finished_at.as_deref(), Some("2026-01-02T00:00:01Z"));
    assert!(got[0].announce && !got[0].again);
}

fn heartbeats_are_read_and_their_writes_heard(f: &mut impl Fixture) {
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    assert_eq!(spool.heartbeat("marie"), StoredHeartbeat::Missing);
    let beat = r#"{"timestamp": 12.5, "status": "idle"}"#;
    f.heartbeat("marie", beat);
    wait_notices(spool.as_mut(), &mut poll, |n| n.heartbeats.iter().any(|w| w == "marie"));
    assert_eq!(spool.heartbeat("marie"), StoredHeartbeat::Found(beat.as_bytes().to_vec()));
}

fn every_hosts_heartbeat_is_given_the_freshest_first(f: &mut impl Fixture) {
    let (mut spool, mut poll) = started(f);
    spool.follow("marie", false);
    assert!(spool.heartbeats("marie").is_empty(), "none yet");
    let hosts = f.hosts();
    let beat = |i: usize| format!(r#"{{"timestamp": {i}, "status": "idle"}}"#);
    for (i, host) in hosts.iter().enumerate() {
        f.host_heartbeat("marie", host, &beat(i));
    }
    // Written one after the other: the last is the freshest.
    let want: Vec<(String, StoredHeartbeat)> = hosts
        .iter()
        .enumerate()
        .rev()
        .map(|(i, h)| (h.to_string(), StoredHeartbeat::Found(beat(i).into_bytes())))
        .collect();
    let end = deadline();
    let mut events = Events::with_capacity(8);
    while spool.heartbeats("marie") != want {
        spool.drain();
        let left = end.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "{:?}, not {want:?}", spool.heartbeats("marie"));
        poll.poll(&mut events, Some(left.min(std::time::Duration::from_millis(100)))).expect("poll");
    }
    assert_eq!(spool.heartbeat("marie"), want[0].1, "the worker's is the freshest");
}

fn workers_that_show_up_are_heard_and_listed(f: &mut impl Fixture) {
    let (mut spool, mut poll) = started(f);
    f.queue("anga");
    wait_notices(spool.as_mut(), &mut poll, |n| n.appeared.iter().any(|w| w == "anga"));
    f.heartbeat("fabien", r#"{"timestamp": 1}"#);
    let workers = spool.workers();
    assert!(workers.contains(&"anga".to_string()) && workers.contains(&"fabien".to_string()), "{workers:?}");
}

fn events_are_written_each_under_its_id(f: &mut impl Fixture) {
    let (mut spool, _poll) = started(f);
    let event = |id: &str| Outgoing { id: id.into(), json: json!({"id": id}).to_string().into_bytes() };
    let ids = ["20260101T000000.000000001Z-a", "20260101T000000.000000002Z-b"];
    let outcomes = spool.write_events(&[event(ids[0]), event(ids[1])]);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let written = f.events();
    assert_eq!(written.keys().cloned().collect::<Vec<_>>(), ids);
    assert_eq!(written[ids[1]]["id"], ids[1]);
    assert_ne!(spool.event_at(ids[0]), spool.event_at(ids[1]));
}

fn the_state_comes_back_once_committed(f: &mut impl Fixture) {
    let mut spool = f.open();
    assert_eq!(spool.load().expect("load"), None, "a first start");
    spool.start(false).expect("start");
    spool.commit(json!({"version": 1, "n": 3})).expect("commit");
    drop(spool);
    let mut spool = f.open();
    let saved = spool.load().expect("load").expect("a state");
    let value: Value = serde_json::from_slice(&saved.bytes).expect("json");
    assert_eq!(value["n"], 3);
}

suite!(fs, super::Fs::new();
    results_are_handed_out_once_and_a_commit_keeps_them_taken,
    results_not_committed_are_handed_out_again_the_same,
    history_older_than_the_backfill_is_counted_not_announced,
    a_new_result_of_a_task_is_a_new_result,
    heartbeats_are_read_and_their_writes_heard,
    every_hosts_heartbeat_is_given_the_freshest_first,
    workers_that_show_up_are_heard_and_listed,
    events_are_written_each_under_its_id,
    the_state_comes_back_once_committed,
);

suite!(mem, super::Mem::new();
    results_are_handed_out_once_and_a_commit_keeps_them_taken,
    results_not_committed_are_handed_out_again_the_same,
    history_older_than_the_backfill_is_counted_not_announced,
    a_new_result_of_a_task_is_a_new_result,
    heartbeats_are_read_and_their_writes_heard,
    every_hosts_heartbeat_is_given_the_freshest_first,
    workers_that_show_up_are_heard_and_listed,
    events_are_written_each_under_its_id,
    the_state_comes_back_once_committed,
);

engine_suite!(redis, super::super::engine::Listener::start;
    results_are_handed_out_once_and_a_commit_keeps_them_taken,
    results_not_committed_are_handed_out_again_the_same,
    history_older_than_the_backfill_is_counted_not_announced,
    a_new_result_of_a_task_is_a_new_result,
    heartbeats_are_read_and_their_writes_heard,
    every_hosts_heartbeat_is_given_the_freshest_first,
    workers_that_show_up_are_heard_and_listed,
    events_are_written_each_under_its_id,
    the_state_comes_back_once_committed,
);
