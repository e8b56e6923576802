use super::*;
use crate::config::{Config, Layers};
use crate::format::records::{TaskResult, COMPLETED};

fn open(dir: &Path) -> FsSpool {
    let mut layers = Layers::default();
    layers.env.insert("WATCHER_ROOT".into(), dir.display().to_string());
    let cfg = Config::load("marie", &layers).expect("config");
    FsSpool::open("marie", &cfg.paths).map_err(|e| format!("{e:?}")).expect("open")
}

fn paths_in(dir: &Path) -> crate::config::Paths {
    let mut layers = Layers::default();
    layers.env.insert("WATCHER_ROOT".into(), dir.display().to_string());
    Config::load("marie", &layers).expect("config").paths
}

fn result(id: &str) -> TaskResult {
    TaskResult {
        task_id: id.into(),
        worker: "marie".into(),
        status: COMPLETED.into(),
        reason: None,
        message: None,
        exit_code: Some(0),
        signal: None,
        output: Value::Null,
        output_truncated: false,
        output_bytes: 0,
        stderr_tail: String::new(),
        attempts: 1,
        started_at: None,
        finished_at: String::new(),
        duration_seconds: 0.0,
        hostname: String::new(),
        metadata: Value::Null,
        agent: None,
        runs: Vec::new(),
    }
}

#[test]
fn second_open_is_locked_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = open(dir.path());
    let mut layers = Layers::default();
    layers.env.insert("WATCHER_ROOT".into(), dir.path().display().to_string());
    let cfg = Config::load("marie", &layers).expect("config");
    match FsSpool::open("marie", &cfg.paths) {
        Err(OpenError::Locked(m)) => assert!(m.contains("already running"), "{m}"),
        other => panic!("expected Locked, got {:?}", other.err()),
    }
}

#[test]
fn claim_complete_releases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    fs::write(s.queue_dir().join("t1.json"), r#"{"description":"x"}"#).expect("w");
    let scan = s.scan().expect("scan");
    assert_eq!(scan.entries.len(), 1);
    let claim = s.claim(&EntryId::from("t1.json")).expect("claim").expect("claimed");
    assert!(s.claim(&EntryId::from("t1.json")).expect("claim").is_none(), "only one claim wins");
    assert_eq!(claim.file, Some(s.inflight_path(&claim)), "the agent reads the claimed file");
    let loaded = s.load(&claim, 1000, "marie").expect("load");
    assert_eq!(loaded.task.id, "t1");
    s.stage(Op::Complete { claim: claim.clone(), result: result("t1") });
    // Handed to the writer thread; its outcome comes back from a later call.
    assert!(s.busy());
    let done = s.commit_wait();
    assert!(done[0].error.is_none());
    assert!(!s.busy());
    assert!(s.result_exists("t1"));
    assert!(!s.inflight_path(&claim).exists());
}

#[test]
fn same_name_claimed_twice_gets_another_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    fs::write(s.queue_dir().join("t.json"), "{}").expect("w");
    let a = s.claim(&EntryId::from("t.json")).expect("claim").expect("a");
    fs::write(s.queue_dir().join("t.json"), "{}").expect("w");
    let b = s.claim(&EntryId::from("t.json")).expect("claim").expect("b");
    assert_ne!(a.key, b.key);
    assert!(s.inflight_path(&a).exists() && s.inflight_path(&b).exists());
}

#[test]
fn special_files_are_rejected_unopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let fifo = s.queue_dir().join("f.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    std::os::unix::fs::symlink("/etc/passwd", s.queue_dir().join("l.json")).expect("symlink");
    for (name, kind) in [("f.json", "FIFO"), ("l.json", "symbolic link")] {
        let claim = s.claim(&EntryId::from(name)).expect("claim").expect("claimed");
        let r = s.load(&claim, 1000, "marie").expect_err("rejected");
        assert_eq!(r.why, Invalid::NotRegular(kind));
        assert!(r.keep_original);
    }
}

#[test]
fn too_large_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    fs::write(s.queue_dir().join("big.json"), vec![b' '; 2000]).expect("w");
    let claim = s.claim(&EntryId::from("big.json")).expect("claim").expect("claimed");
    let r = s.load(&claim, 1000, "marie").expect_err("too big");
    assert_eq!(r.why, Invalid::TooLarge { size: 2000, max: 1000 });
    assert_eq!(r.fallback_id.as_deref(), Some("big"), "its result goes under its file's stem");
}

#[test]
fn requeue_does_not_clobber_a_new_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    fs::write(s.queue_dir().join("t.json"), "old").expect("w");
    let claim = s.claim(&EntryId::from("t.json")).expect("claim").expect("claimed");
    fs::write(s.queue_dir().join("t.json"), "new").expect("w");
    s.requeue(&claim).expect("requeue");
    assert_eq!(fs::read_to_string(s.queue_dir().join("t.json")).expect("r"), "new");
    assert_eq!(fs::read_to_string(s.queue_dir().join("t~1.json")).expect("r"), "old");
}

#[test]
fn submit_queues_beside_a_task_of_the_same_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    fs::write(s.queue_dir().join("t.json"), "first").expect("w");
    let out = s.submit(vec![("t".into(), b"second".to_vec())]);
    let name = out.into_iter().next().expect("one").expect("queued");
    assert_ne!(name, EntryId::from("t.json"));
    assert_eq!(classify(os(&name)), NameKind::Task);
    assert_eq!(fs::read(s.queue_dir().join("t.json")).expect("t"), b"first");
    assert_eq!(fs::read(s.queue_dir().join(os(&name))).expect("alt"), b"second");
    let names: Vec<EntryId> = s.scan().expect("scan").entries.into_iter().map(|e| e.id).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn remote_filesystems_by_magic() {
    assert_eq!(remote_kind(0x6969), Some("nfs"));
    assert_eq!(remote_kind(0xfe53_4d42), Some("smb2"));
    assert_eq!(remote_kind(0x6573_5546), Some("fuse"));
    assert_eq!(remote_kind(0xef53), None, "ext4 is local");
    assert_eq!(remote_kind(0x0102_1994), None, "tmpfs is local");
}

#[test]
fn lock_dir_holds_the_lock_instead_of_the_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = paths_in(dir.path());
    paths.lock = Some(dir.path().join("locks"));
    let _a = FsSpool::open("marie", &paths).unwrap_or_else(|_| panic!("open"));
    assert!(dir.path().join("locks/marie.lock").exists());
    // The queue folder is not locked: a worker with another LOCK_DIR opens the same spool.
    let mut other = paths.clone();
    other.lock = Some(dir.path().join("other"));
    assert!(FsSpool::open("marie", &other).is_ok());
    assert!(matches!(FsSpool::open("marie", &paths), Err(OpenError::Locked(_))));
}

#[test]
fn a_file_put_back_half_written_is_not_an_arrival_but_its_close_is() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.watch_queue().expect("watch");
    let poll = mio::Poll::new().expect("poll");
    let mut f = File::create(s.queue_dir().join("a.json")).expect("create");
    f.write_all(b"{\"descr").expect("write");
    let claim = s.claim(&EntryId::from("a.json")).expect("claim").expect("claimed");
    let r = s.load(&claim, 1000, "marie").expect_err("half written");
    // Our own file: the lease tells (unless leases are off on this machine).
    let u = r.unfinished.expect("may be unfinished");
    assert!(matches!(u.writers, Writers::Open | Writers::Unknown), "{u:?}");
    assert_eq!(s.put_back(&claim).expect("put back"), EntryId::from("a.json"));
    let intake = s.intake(poll.registry(), mio::Token(0)).expect("intake");
    assert!(intake.arrivals.is_empty(), "its move back is no arrival: {intake:?}");
    f.write_all(b"iption\": \"x\"}").expect("write");
    drop(f);
    let intake = s.intake(poll.registry(), mio::Token(0)).expect("intake");
    assert_eq!(intake.arrivals, vec![EntryId::from("a.json")], "its close is");
    let claim = s.claim(&EntryId::from("a.json")).expect("claim").expect("claimed");
    assert_eq!(s.load(&claim, 1000, "marie").expect("whole now").task.description, "x");
}

#[test]
fn a_closed_file_that_is_not_json_is_final() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    fs::write(s.queue_dir().join("a.json"), "{\"descr").expect("w");
    let claim = s.claim(&EntryId::from("a.json")).expect("claim").expect("claimed");
    let r = s.load(&claim, 1000, "marie").expect_err("not json");
    assert!(matches!(r.why, Invalid::NotJson(_)));
    if let Some(u) = r.unfinished {
        assert_eq!(u.writers, Writers::Unknown, "only when the kernel would not say");
    }
}

#[test]
fn an_invalid_result_is_told_apart_and_set_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let results = dir.path().join("results/marie");
    fs::write(results.join("bad.json"), r#"{"task_id":"bad","status":"failed","reason":"invalid"}"#)
        .expect("w");
    fs::write(results.join("ran.json"), r#"{"task_id":"ran","status":"failed","reason":"timeout"}"#)
        .expect("w");
    assert!(s.result_is_invalid("bad"));
    assert!(!s.result_is_invalid("ran") && !s.result_is_invalid("none") && !s.result_is_invalid("../x"));
    s.set_aside_result("bad").expect("set aside");
    assert!(!s.result_exists("bad"));
    let kept = fs::read_dir(results.join(".retried")).expect("retried").count();
    assert_eq!(kept, 1);
}

fn heartbeat(processed: u64) -> crate::format::records::Heartbeat {
    beat("idle", 0, processed)
}

fn beat(status: &str, active: usize, processed: u64) -> crate::format::records::Heartbeat {
    serde_json::from_value(serde_json::json!({
        "worker": "marie", "pid": 1, "hostname": "h", "timestamp": 1.0, "status": status,
        "active_tasks": active, "queue_size": 0, "max_concurrent": 1, "processed": processed,
        "failed": 0, "retried": 0, "dead_lettered": 0, "circuit_state": "closed",
        "started_at": 1.0, "heartbeat_interval": 10.0, "version": "x",
    }))
    .expect("heartbeat")
}

/// Only the periodic heartbeat of a worker with nothing running, in the state the last one
/// told, is written by the loop itself. A change of state (a task starting, the last one
/// ending) or a heartbeat while agents run goes to the writer thread: those come with tasks,
/// and a file written on the loop holds up the claim of whatever arrives meanwhile (detection
/// p50 0.2 ms higher with them written by the loop, bench/BENCHMARKS.md, issue 18).
#[test]
fn only_an_unchanged_idle_heartbeat_is_written_by_the_loop() {
    let first = None;
    assert!(!beat_in_place(first, &beat("idle", 0, 1)), "the first one tells a state");
    assert!(beat_in_place(Some("idle"), &beat("idle", 0, 2)));
    assert!(!beat_in_place(Some("idle"), &beat("busy", 1, 3)), "a task started");
    assert!(!beat_in_place(Some("busy"), &beat("busy", 2, 4)), "agents run");
    assert!(!beat_in_place(Some("busy"), &beat("idle", 0, 5)), "the last task ended");
    assert!(beat_in_place(Some("circuit_open"), &beat("circuit_open", 0, 6)), "nothing runs");
}

/// The spool keeps the state of the last heartbeat staged: after a change of state goes out,
/// the next unchanged one is written at once by the commit.
#[test]
fn a_heartbeat_after_a_change_of_state_is_written_in_place_once_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.stage(Op::Heartbeat(beat("busy", 1, 1)));
    s.commit_wait();
    s.stage(Op::Heartbeat(beat("idle", 0, 2)));
    s.commit_wait();
    s.stage(Op::Heartbeat(beat("idle", 0, 3)));
    let done = s.commit();
    assert!(matches!(done.as_slice(), [Done { kind: OpKind::Heartbeat, error: None, .. }]), "{done:?}");
    let last: Value =
        serde_json::from_slice(&fs::read(dir.path().join("heartbeats/marie.json")).expect("read"))
            .expect("json");
    assert_eq!(last["processed"], 3);
}

/// An idle worker's heartbeat is written by the loop's own commit, without the writer thread
/// (whose wake-up, and the loop's when it is done, would triple the idle wake-ups), and it
/// still replaces the previous one atomically: a new file renamed over it.
#[test]
fn a_lone_heartbeat_is_written_at_once_and_replaces_the_last_atomically() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let path = dir.path().join("heartbeats/marie.json");
    // The first tells the worker's state: it goes through the writer.
    s.stage(Op::Heartbeat(heartbeat(0)));
    s.commit_wait();
    s.stage(Op::Heartbeat(heartbeat(1)));
    let done = s.commit();
    assert!(
        matches!(done.as_slice(), [Done { kind: OpKind::Heartbeat, error: None, .. }]),
        "written by the commit itself: {done:?}"
    );
    let mut old = File::open(&path).expect("first heartbeat");
    s.stage(Op::Heartbeat(heartbeat(2)));
    assert_eq!(s.commit().len(), 1);
    assert!(!s.busy());
    let new: Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
    assert_eq!(new["processed"], 2);
    // The file read before is whole and unchanged: the new one took its name.
    let mut text = String::new();
    old.read_to_string(&mut text).expect("old");
    assert_eq!(serde_json::from_str::<Value>(&text).expect("old json")["processed"], 1);
    let names: Vec<_> =
        fs::read_dir(dir.path().join("heartbeats")).expect("ls").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("marie.json")], "no temp file left");
}

/// With other ops to write, or a batch in flight, the heartbeat goes with the next batch, so a
/// newer heartbeat never lands before an older one.
#[test]
fn a_heartbeat_with_other_ops_goes_with_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.stage(Op::Ledger(b"{}".to_vec()));
    s.stage(Op::Heartbeat(heartbeat(1)));
    s.commit();
    s.stage(Op::Heartbeat(heartbeat(2)));
    let mut kinds: Vec<OpKind> = s.commit().into_iter().map(|d| d.kind).collect();
    kinds.extend(s.commit_wait().into_iter().map(|d| d.kind));
    assert_eq!(kinds.iter().filter(|k| **k == OpKind::Heartbeat).count(), 2, "{kinds:?}");
    let last: Value =
        serde_json::from_slice(&fs::read(dir.path().join("heartbeats/marie.json")).expect("read"))
            .expect("json");
    assert_eq!(last["processed"], 2);
}
