//! Enqueue, claim, recovery of a host's own entries.

use super::*;
use crate::engine::redis::error::EngineError;
use crate::engine::redis::testing::Server;

#[test]
fn enqueue_is_idempotent_by_id_while_the_task_or_its_result_exists() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    assert!(matches!(enqueue(&mut e, &q, "t1"), Reply::Queued { .. }));
    assert_eq!(enqueue(&mut e, &q, "t1"), Reply::Duplicate { of: "queued".into() });
    let h = held(&claim(&mut e, &q, 1));
    assert_eq!(enqueue(&mut e, &q, "t1"), Reply::Duplicate { of: "claimed".into() });
    let r = e.run(&q.complete(&h[0], b"{}", super::super::ops::Status::Completed, TTL)).unwrap();
    assert!(matches!(r, Reply::Written { .. }), "{r:?}");
    assert_eq!(enqueue(&mut e, &q, "t1"), Reply::Duplicate { of: "result".into() });
    // Once the result is gone (its TTL), the id is new again.
    let _: i64 = cmd(&mut e, &["DEL", &q.keys().result("t1")]);
    assert!(matches!(enqueue(&mut e, &q, "t1"), Reply::Queued { .. }));
    let len: i64 = cmd(&mut e, &["XLEN", &q.keys().queue()]);
    assert_eq!(len, 1, "one entry: the completed one was deleted, the duplicates never added");
}

#[test]
fn a_claim_takes_no_more_than_the_free_slots_and_nothing_while_paused() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    for i in 0..5 {
        enqueue(&mut e, &q, &format!("t{i}"));
    }
    let first = claim(&mut e, &q, 2);
    assert_eq!(first.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["t0", "t1"], "FIFO, two slots");
    let pending: Vec<redis::Value> = cmd(&mut e, &["XPENDING", &q.keys().queue(), "workers"]);
    assert_eq!(pending[0], redis::Value::Int(2), "nothing prefetched beyond the free slots");
    let Fate::Run(task) = &first[0].fate else { panic!("{first:?}") };
    assert_eq!((task.doc.clone(), task.reclaims, task.state.clone()), (doc("t0"), 0, None));
    let receipt: String = cmd(&mut e, &["HGET", &q.keys().inflight(), "t0"]);
    assert!(receipt.contains(r#""consumer":"host-a""#), "{receipt}");

    let (mut e2, q2) = srv.queue("marie", "host-b");
    assert!(matches!(
        e2.run(&q2.pause(Duration::from_secs(60), "rate limit")).unwrap(),
        Reply::PauseFor { ms: 60000 }
    ));
    let r = e.run(&q.claim(3)).unwrap();
    assert!(matches!(r, Reply::Paused { ms, .. } if ms > 0), "a pause set by host-b stops host-a: {r:?}");
    let _: i64 = cmd(&mut e, &["DEL", &q.keys().pause()]);
    assert_eq!(claim(&mut e, &q, 3).len(), 3);
    assert!(claim(&mut e, &q, 3).is_empty());
}

#[test]
fn a_restarted_host_reads_its_own_pending_entries_first_counting_a_reclaim() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    for i in 0..3 {
        enqueue(&mut e, &q, &format!("t{i}"));
    }
    let before = claim(&mut e, &q, 2);
    drop(e);
    // The same consumer name after a restart: its leftovers, not new entries.
    let (mut e, q) = srv.queue("marie", "host-a");
    let again = e.run(&q.recover("0", 10, true)).unwrap().delivered().unwrap();
    assert_eq!(
        again.iter().map(|d| &d.entry).collect::<Vec<_>>(),
        before.iter().map(|d| &d.entry).collect::<Vec<_>>()
    );
    for d in &again {
        let Fate::Run(t) = &d.fate else { panic!("{d:?}") };
        assert_eq!(t.reclaims, 1);
    }
    // A claim whose reply was lost is found the same way, without counting a reclaim.
    let lost = claim(&mut e, &q, 1);
    let found = e.run(&q.recover(&again[1].entry, 10, false)).unwrap().delivered().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].entry, lost[0].entry);
    let Fate::Run(t) = &found[0].fate else { panic!() };
    assert_eq!(t.reclaims, 0);
}

#[test]
fn an_entry_whose_task_has_a_result_is_dropped_not_run() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    enqueue(&mut e, &q, "t1");
    let _: () = cmd(&mut e, &["SET", &q.keys().result("t1"), "{}"]);
    let d = claim(&mut e, &q, 1);
    assert_eq!(d[0].fate, Fate::Done);
    let len: i64 = cmd(&mut e, &["XLEN", &q.keys().queue()]);
    assert_eq!(len, 0);
}

#[test]
fn memory_full_refuses_enqueue_with_oom_and_loses_nothing_acknowledged() {
    let Some(srv) = Server::start(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]) else {
        return;
    };
    let (mut e, q) = srv.queue("marie", "host-a");
    let big = vec![b'x'; 64 * 1024];
    let mut queued = Vec::new();
    let refusal = (0..1000).find_map(|i| {
        let id = format!("t{i}");
        match e.run(&q.enqueue(&id, &big, None, 90)) {
            Ok(Reply::Queued { .. }) => {
                queued.push(id);
                None
            }
            Ok(other) => panic!("{other:?}"),
            Err(err) => Some(err),
        }
    });
    let Some(EngineError::OutOfMemory(msg)) = refusal else { panic!("no OOM refusal: {refusal:?}") };
    assert!(msg.contains("enqueue refused") && msg.contains("maxmemory"), "{msg}");
    assert!(!queued.is_empty());
    // The headroom left by the enqueue limit lets admitted work finish: claim and complete.
    let h = held(&claim(&mut e, &q, 1));
    let r = e.run(&q.complete(&h[0], &vec![b'r'; 1024], super::super::ops::Status::Completed, TTL)).unwrap();
    assert!(matches!(r, Reply::Written { .. }), "{r:?}");
    // Without the limit, the server's own OOM refuses the script before any write.
    let refusal = (0..1000).find_map(|i| e.run(&q.enqueue(&format!("u{i}"), &big, None, 0)).err());
    assert!(matches!(refusal, Some(EngineError::OutOfMemory(_))), "{refusal:?}");
    let len: usize = cmd(&mut e, &["XLEN", &q.keys().queue()]);
    let unsent: usize = queued.len() - 1;
    assert!(len >= unsent, "{len} entries for {unsent} acknowledged enqueues");
    for id in &queued[1..] {
        let phase: Option<String> = cmd(&mut e, &["HGET", &q.keys().task(id), "phase"]);
        assert_eq!(phase.as_deref(), Some("queued"), "{id}");
    }
}
