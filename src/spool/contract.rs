//! The contract of [`Spool`] that every backend keeps, run against each: the folders and the
//! in-memory spool. What differs by kind (a listing claims the id asked for, a stream hands
//! out its own next) is left out; the rest must hold for a backend to be one.

use std::path::Path;

use super::{fs::FsSpool, mem::MemSpool, EntryId, Op, Spool};
use crate::config::{Config, Layers};
use crate::format::records::TaskResult;
use crate::format::task::Invalid;

const TASK: &[u8] = br#"{"description": "x"}"#;

fn result(id: &str) -> TaskResult {
    TaskResult::new(id.into(), "marie".into(), "host".into(), String::new())
}

fn ids(spool: &mut dyn Spool) -> Vec<EntryId> {
    spool.scan().expect("scan").entries.into_iter().map(|e| e.id).collect()
}

fn keeps_the_contract(spool: &mut dyn Spool) {
    let queued: Vec<EntryId> = spool
        .submit(vec![("t1".into(), TASK.to_vec()), ("t2".into(), TASK.to_vec())])
        .into_iter()
        .map(|r| r.expect("queued"))
        .collect();
    assert_eq!(ids(spool), queued, "listed oldest first");
    // A claim, read back, completed: its result exists and it is no longer held.
    let claim = spool.claim(&queued[0]).expect("claim").expect("claimed");
    assert_eq!(claim.source, queued[0]);
    assert_eq!(spool.load(&claim, 1 << 20, "marie").expect("a task").task.id, "t1");
    spool.stage(Op::Complete { claim: claim.clone(), result: result("t1") });
    let done = spool.commit_wait();
    assert!(done.iter().all(|d| d.error.is_none()) && done.iter().any(|d| d.key == Some(claim.key.clone())));
    assert!(spool.result_exists("t1") && !spool.result_exists("t2"));
    assert!(!spool.busy() && !spool.has_pending());
    // A claim put back is queued again; one kept is a leftover for the next start.
    let claim = spool.claim(&queued[1]).expect("claim").expect("claimed");
    assert!(ids(spool).is_empty());
    spool.requeue(&claim).expect("requeue");
    let again = ids(spool);
    assert_eq!(again.len(), 1);
    let claim = spool.claim(&again[0]).expect("claim").expect("claimed");
    let left: Vec<EntryId> = spool.leftovers().expect("leftovers").into_iter().map(|c| c.key).collect();
    assert_eq!(left, vec![claim.key.clone()]);
    spool.discard(&claim).expect("discard");
    assert!(spool.leftovers().expect("leftovers").is_empty());
    // Content that is not a task is rejected, with the id a task without one would take.
    let bad = spool.submit(vec![("bad".into(), b"not json".to_vec())]).remove(0).expect("queued");
    let claim = spool.claim(&bad).expect("claim").expect("claimed");
    let r = spool.load(&claim, 1 << 20, "marie").expect_err("not a task");
    assert!(matches!(r.why, Invalid::NotJson(_)), "{r:?}");
    assert_eq!(r.fallback_id.as_deref(), Some("bad"));
    assert!(spool.claim(&bad).expect("claim").is_none(), "nothing left to claim");
}

/// Requests to cancel a task come through the backend; a queued task is taken out of the
/// queue by its id, whatever the backend's order. `request` plays watcherctl.
fn cancels_through_the_backend(spool: &mut dyn Spool, request: &mut dyn FnMut(&str)) {
    for r in spool.submit(vec![("c1".into(), TASK.to_vec()), ("c2".into(), TASK.to_vec())]) {
        r.expect("queued");
    }
    request("c2");
    let requests = spool.scan().expect("scan").cancels;
    let asked: Vec<&str> = requests.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(asked, ["c2"]);
    let claim = spool.withdraw("c2").expect("withdraw").expect("c2 was queued");
    assert_eq!(spool.load(&claim, 1 << 20, "marie").expect("a task").task.id, "c2");
    assert!(spool.withdraw("c2").expect("withdraw").is_none(), "no longer queued");
    assert!(spool.withdraw("nothing").expect("withdraw").is_none());
    assert_eq!(ids(spool).len(), 1, "c1 is still queued");
    spool.stage(Op::Complete { claim, result: result("c2") });
    assert!(spool.commit_wait().iter().all(|d| d.error.is_none()));
    spool.drop_request(&requests[0]).expect("drop");
    assert!(spool.scan().expect("scan").cancels.is_empty(), "dropped");
    assert!(spool.leftovers().expect("leftovers").is_empty());
}

fn folders(dir: &Path) -> FsSpool {
    let mut layers = Layers::default();
    layers.env.insert("WATCHER_ROOT".into(), dir.display().to_string());
    let cfg = Config::load("marie", &layers).expect("config");
    FsSpool::open("marie", &cfg.paths).map_err(|e| format!("{e:?}")).expect("open")
}

#[test]
fn the_folders_keep_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    keeps_the_contract(&mut folders(dir.path()));
}

#[test]
fn the_memory_keeps_the_contract() {
    keeps_the_contract(&mut MemSpool::new());
}

#[test]
fn the_engine_keeps_the_contract() {
    let Some(server) = super::redis::testing::Server::start(&[]) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = super::redis::testing::settings(&server, "host-a", std::time::Duration::from_secs(30));
    let layout = super::Layout::new(dir.path());
    let mut spool = super::redis::worker::RedisSpool::open("marie", &settings, &layout).expect("open");
    spool.wait_ready(std::time::Duration::from_secs(20));
    keeps_the_contract(&mut spool);
}

#[test]
fn the_folders_take_cancel_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spool = folders(dir.path());
    let layout = crate::spool::Layout::new(dir.path());
    cancels_through_the_backend(&mut spool, &mut |id| {
        let path = layout.cancel_request("marie", id);
        std::fs::write(path, br#"{"task_id": "c2", "by": "root@host"}"#).expect("request");
    });
}

#[test]
fn the_memory_takes_cancel_requests() {
    let mut spool = MemSpool::new();
    let store = spool.store();
    cancels_through_the_backend(&mut spool, &mut |id| store.borrow_mut().request_cancel(id));
}

#[test]
fn the_engine_takes_cancel_requests() {
    let Some(server) = super::redis::testing::Server::start(&[]) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = super::redis::testing::settings(&server, "host-a", std::time::Duration::from_secs(30));
    let layout = super::Layout::new(dir.path());
    let mut spool = super::redis::worker::RedisSpool::open("marie", &settings, &layout).expect("open");
    spool.wait_ready(std::time::Duration::from_secs(20));
    let keys = crate::engine::redis::keys::Fleet::new("ww").worker("marie");
    let mut c = server.engine();
    cancels_through_the_backend(&mut spool, &mut |id| {
        let json = format!(r#"{{"task_id": "{id}", "by": "root@host"}}"#);
        redis::cmd("HSET")
            .arg(keys.cancels())
            .arg(id)
            .arg(json)
            .query::<()>(c.connection())
            .expect("request");
    });
}
