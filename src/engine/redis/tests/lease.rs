//! Lease renewal and reclaim of a dead host's entries.

use super::*;
use crate::engine::redis::reply::{Lease, LeaseState};
use crate::engine::redis::testing::{until, Server};

#[test]
fn renewal_keeps_entries_and_reports_those_taken_or_gone() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut a, qa) = srv.queue("marie", "host-a");
    let (mut b, qb) = srv.queue("marie", "host-b");
    for i in 0..3 {
        enqueue(&mut a, &qa, &format!("t{i}"));
    }
    let h = held(&claim(&mut a, &qa, 3));
    let entries: Vec<&str> = h.iter().map(|h| h.entry.as_str()).collect();
    // t0 taken over by host-b, t1 finished by host-b, t2 still host-a's.
    let _: redis::Value =
        cmd(&mut b, &["XCLAIM", &qb.keys().queue(), "workers", "host-b", "0", entries[0], entries[1]]);
    b.run(&qb.complete(&h[1], b"{}", crate::engine::redis::ops::Status::Completed, TTL)).unwrap();
    let leases = a.run(&qa.renew(entries.iter().copied())).unwrap().leases().unwrap();
    assert_eq!(
        leases,
        vec![
            Lease { entry: h[0].entry.clone(), state: LeaseState::Taken { by: "host-b".into() } },
            Lease { entry: h[1].entry.clone(), state: LeaseState::Gone },
            Lease { entry: h[2].entry.clone(), state: LeaseState::Held },
        ]
    );
    let idle: Vec<Vec<redis::Value>> =
        cmd(&mut a, &["XPENDING", &qa.keys().queue(), "workers", "-", "+", "10", "host-a"]);
    assert_eq!(idle.len(), 1);
    assert_eq!(idle[0][3], redis::Value::Int(1), "a renewal counts no delivery");
}

#[test]
fn a_dead_hosts_entries_are_reclaimed_after_one_lease_at_most_the_free_slots() {
    let Some(srv) = Server::start(&[]) else { return };
    let lease = Duration::from_millis(300);
    let (mut a, qa) = srv.queue("marie", "host-a");
    let (mut b, qb) = srv.queue("marie", "host-b");
    for i in 0..3 {
        enqueue(&mut a, &qa, &format!("t{i}"));
    }
    let h = held(&claim(&mut a, &qa, 3));
    // Entries renewed within the lease are not taken (an hour stands for "not yet idle").
    let early = b.run(&qb.reclaim(Duration::from_secs(3600), 2, "0-0")).unwrap().delivered().unwrap();
    assert!(early.is_empty(), "{early:?}");
    // host-a is dead: nothing renews. After one lease host-b, with two free slots, takes two.
    let got = until(Duration::from_secs(10), || {
        let d = b.run(&qb.reclaim(lease, 2, "0-0")).unwrap().delivered().unwrap();
        (!d.is_empty()).then_some(d)
    })
    .unwrap();
    assert_eq!(got.len(), 2, "never more than the free slots");
    for d in &got {
        let Fate::Run(t) = &d.fate else { panic!("{d:?}") };
        assert_eq!(
            (t.reclaims, t.previous.as_deref()),
            (1, Some("host-a")),
            "a reclaim is counted on the task"
        );
    }
    let mine: Vec<Vec<redis::Value>> =
        cmd(&mut b, &["XPENDING", &qb.keys().queue(), "workers", "-", "+", "10", "host-b"]);
    assert_eq!(mine.len(), 2);
    let leases = a.run(&qa.renew(h.iter().map(|h| h.entry.as_str()))).unwrap().leases().unwrap();
    assert_eq!(leases.iter().filter(|l| l.state == LeaseState::Held).count(), 1);
    assert_eq!(
        leases.iter().filter(|l| matches!(&l.state, LeaseState::Taken { by } if by == "host-b")).count(),
        2
    );
}

#[test]
fn a_consumer_that_holds_entries_is_never_deleted() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut a, qa) = srv.queue("marie", "host-a");
    enqueue(&mut a, &qa, "t1");
    let h = held(&claim(&mut a, &qa, 1));
    assert_eq!(
        a.run(&qa.forget_consumer("host-a")).unwrap(),
        Reply::Consumer { outcome: "holds".into(), pending: 1 }
    );
    a.run(&qa.complete(&h[0], b"{}", crate::engine::redis::ops::Status::Completed, TTL)).unwrap();
    assert_eq!(
        a.run(&qa.forget_consumer("host-a")).unwrap(),
        Reply::Consumer { outcome: "deleted".into(), pending: 0 }
    );
    assert_eq!(
        a.run(&qa.forget_consumer("host-a")).unwrap(),
        Reply::Consumer { outcome: "absent".into(), pending: 0 }
    );
}

#[test]
fn after_a_silence_of_every_host_nothing_is_reclaimed_for_one_lease() {
    let Some(srv) = Server::start(&[]) else { return };
    // A lease of an hour: idle entries are made by XCLAIM with IDLE, never by waiting.
    let lease = Duration::from_secs(3600);
    let (mut a, qa) = srv.queue("marie", "host-a");
    let (mut b, qb) = srv.queue("marie", "host-b");
    enqueue(&mut a, &qa, "t0");
    let h = held(&claim(&mut a, &qa, 1));
    let q = qa.keys().queue();
    let idle = (2 * lease.as_millis()).to_string();
    let _: redis::Value = cmd(&mut a, &["XCLAIM", &q, "workers", "host-a", "0", &h[0].entry, "IDLE", &idle]);
    // Every host's last heartbeat is older than half a lease: the fleet was silent.
    let old = (now_ms(&mut a) - lease.as_millis() as i64).to_string();
    let _: i64 = cmd(&mut a, &["ZADD", &qa.keys().hosts(), &old, "host-a", &old, "host-b"]);
    let r = b.run(&qb.reclaim(lease, 1, "0-0")).unwrap();
    assert!(matches!(r, Reply::Stalled { .. }), "{r:?}");
    // host-b beats again at once; the hold stands for a lease all the same.
    b.run(&qb.heartbeat_watching(b"{}", lease, Some(lease))).unwrap();
    assert!(matches!(b.run(&qb.reclaim(lease, 1, "0-0")).unwrap(), Reply::Stalled { .. }));
    // Once it is over (the key expired), a lone live host takes the dead one's entry.
    let _: i64 = cmd(&mut a, &["DEL", &qa.keys().stall()]);
    let got = b.run(&qb.reclaim(lease, 1, "0-0")).unwrap().delivered().unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
}

fn now_ms(e: &mut Engine) -> i64 {
    let t: Vec<String> = cmd(e, &["TIME"]);
    t[0].parse::<i64>().unwrap() * 1000 + t[1].parse::<i64>().unwrap() / 1000
}
