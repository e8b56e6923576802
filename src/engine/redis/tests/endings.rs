//! Complete, dead-letter, retry later, dlq retry, requeue.

use super::*;
use crate::engine::redis::ops::Status;
use crate::engine::redis::reply::DlqRefusal;
use crate::engine::redis::testing::{until, Server};

fn server_ms(e: &mut Engine) -> i64 {
    let (s, us): (i64, i64) = cmd(e, &["TIME"]);
    s * 1000 + us / 1000
}

#[test]
fn the_first_result_wins_and_a_duplicate_run_is_only_acknowledged() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut a, qa) = srv.queue("marie", "host-a");
    let (mut b, qb) = srv.queue("marie", "host-b");
    enqueue(&mut a, &qa, "t1");
    let ha = held(&claim(&mut a, &qa, 1));
    // host-a stops renewing; host-b takes the entry over (min idle 0 stands for a lease).
    let hb = held(&b.run(&qb.reclaim(Duration::ZERO, 1, "0-0")).unwrap().delivered().unwrap());
    assert_eq!(ha, hb);
    let first = b.run(&qb.complete(&hb[0], br#"{"by":"b"}"#, Status::Completed, TTL)).unwrap();
    assert!(matches!(first, Reply::Written { .. }), "{first:?}");
    let late = a.run(&qa.complete(&ha[0], br#"{"by":"a"}"#, Status::Completed, TTL)).unwrap();
    assert_eq!(late, Reply::AlreadyDone);
    let result: String = cmd(&mut a, &["GET", &qa.keys().result("t1")]);
    assert_eq!(result, r#"{"by":"b"}"#);
    let events: usize = cmd(&mut a, &["XLEN", "ww:results"]);
    assert_eq!(events, 1, "one results-stream entry per task");
    let len: usize = cmd(&mut a, &["XLEN", &qa.keys().queue()]);
    let task: usize = cmd(&mut a, &["EXISTS", &qa.keys().task("t1")]);
    let inflight: usize = cmd(&mut a, &["HLEN", &qa.keys().inflight()]);
    assert_eq!((len, task, inflight), (0, 0, 0), "entry, task and receipt all gone");
    let ttl: i64 = cmd(&mut a, &["TTL", &qa.keys().result("t1")]);
    assert!(ttl > 0 && ttl <= 3600, "{ttl}");
}

#[test]
fn a_retry_waits_on_the_servers_clock_then_any_host_promotes_it() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut a, qa) = srv.queue("marie", "host-a");
    enqueue(&mut a, &qa, "t1");
    let h = held(&claim(&mut a, &qa, 1));
    let before = server_ms(&mut a);
    let r = a.run(&qa.retry_later(&h[0], br#"{"attempts":1}"#, Duration::from_millis(300))).unwrap();
    let after = server_ms(&mut a);
    let Reply::Delayed { due_ms } = r else { panic!("{r:?}") };
    assert!(
        due_ms >= before + 300 && due_ms <= after + 300,
        "due {due_ms} not server time + 300 ({before}..{after})"
    );
    let len: usize = cmd(&mut a, &["XLEN", &qa.keys().queue()]);
    assert_eq!(len, 0, "the entry is acknowledged and deleted while the retry waits");
    let (mut b, qb) = srv.queue("marie", "host-b");
    let Reply::Promoted { moved, next_in } = b.run(&qb.promote(100)).unwrap() else { panic!() };
    if server_ms(&mut b) < due_ms {
        assert_eq!(moved, 0, "promoted before its due time");
        assert!(next_in.is_some_and(|n| n <= Duration::from_millis(300)), "{next_in:?}");
    }
    let moved = until(Duration::from_secs(10), || match b.run(&qb.promote(100)).unwrap() {
        Reply::Promoted { moved: 1, .. } => Some(server_ms(&mut b)),
        _ => None,
    });
    assert!(moved.is_some_and(|at| at >= due_ms));
    let d = claim(&mut b, &qb, 1);
    let Fate::Run(t) = &d[0].fate else { panic!("{d:?}") };
    assert_eq!(t.state.as_deref(), Some(&br#"{"attempts":1}"#[..]), "the state saved with the retry");
}

#[test]
fn only_the_holder_may_retry_or_requeue_an_entry() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut a, qa) = srv.queue("marie", "host-a");
    let (mut b, qb) = srv.queue("marie", "host-b");
    enqueue(&mut a, &qa, "t1");
    let h = held(&claim(&mut a, &qa, 1));
    b.run(&qb.reclaim(Duration::ZERO, 1, "0-0")).unwrap();
    let r = a.run(&qa.retry_later(&h[0], b"{}", Duration::ZERO)).unwrap();
    assert_eq!(r, Reply::Lost { holder: "host-b".into() });
    assert_eq!(a.run(&qa.requeue(&h[0], None)).unwrap(), Reply::Lost { holder: "host-b".into() });
    let Reply::Queued { entry } = b.run(&qb.requeue(&h[0], Some(b"{}"))).unwrap() else { panic!() };
    assert_ne!(entry, h[0].entry, "requeued as a new entry at the tail");
    assert_eq!(a.run(&qa.retry_later(&h[0], b"{}", Duration::ZERO)).unwrap(), Reply::Gone);
    assert_eq!(claim(&mut a, &qa, 5).len(), 1);
}

#[test]
fn a_dead_letter_keeps_its_history_and_dlq_retry_runs_it_again() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    enqueue(&mut e, &q, "t1");
    let h = held(&claim(&mut e, &q, 1));
    let state = br#"{"attempts":4,"history":[{"attempt":4,"reason":"exit_code"}]}"#;
    let r = e
        .run(&q.dead_letter(
            &h[0],
            br#"{"reason":"exit_code"}"#,
            Some(state),
            Some(br#"{"status":"failed"}"#),
            TTL,
        ))
        .unwrap();
    assert!(matches!(r, Reply::Dead { event: Some(_) }), "{r:?}");
    let record: String = cmd(&mut e, &["HGET", &q.keys().dlq(), "t1"]);
    assert_eq!(record, r#"{"reason":"exit_code"}"#);
    let listed: Vec<String> = cmd(&mut e, &["ZRANGE", &q.keys().dlq_index(), "0", "-1"]);
    assert_eq!(listed, ["t1"]);
    let saved: String = cmd(&mut e, &["HGET", &q.keys().dead("t1"), "state"]);
    assert_eq!(saved.as_bytes(), state);
    let len: usize = cmd(&mut e, &["XLEN", &q.keys().queue()]);
    assert_eq!(len, 0);
    assert_eq!(enqueue(&mut e, &q, "t1"), Reply::Duplicate { of: "result".into() });
    assert_eq!(e.run(&q.dlq_retry("t2", None)).unwrap().dlq_refusal(), Some(DlqRefusal::Absent));

    let reset = br#"{"attempts":0,"history":[{"attempt":4,"reason":"exit_code"}]}"#;
    let r = e.run(&q.dlq_retry("t1", Some(reset))).unwrap();
    assert!(matches!(r, Reply::Queued { .. }), "{r:?}");
    assert_eq!(e.run(&q.dlq_retry("t1", None)).unwrap().dlq_refusal(), Some(DlqRefusal::Absent));
    let d = claim(&mut e, &q, 1);
    let Fate::Run(t) = &d[0].fate else { panic!("{d:?}") };
    assert_eq!((t.doc.clone(), t.state.as_deref(), t.reclaims), (doc("t1"), Some(&reset[..]), 0));
    let dlq: usize = cmd(&mut e, &["HLEN", &q.keys().dlq()]);
    let result: usize = cmd(&mut e, &["EXISTS", &q.keys().result("t1")]);
    assert_eq!((dlq, result), (0, 0));
}

#[test]
fn dlq_retry_refuses_a_task_that_completed() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    enqueue(&mut e, &q, "t1");
    let h = held(&claim(&mut e, &q, 1));
    e.run(&q.dead_letter(&h[0], b"{}", None, None, TTL)).unwrap();
    let _: () = cmd(&mut e, &["SET", &q.keys().result("t1"), r#"{"status":"completed"}"#]);
    assert_eq!(e.run(&q.dlq_retry("t1", None)).unwrap().dlq_refusal(), Some(DlqRefusal::Completed));
}
