//! The worker's spool on a real engine: the claim armed with the wake-up thread.

use std::path::Path;
use std::time::Duration;

use mio::{Poll, Token};

use super::RedisSpool;
use crate::engine::redis::keys::{Fleet, GROUP};
use crate::engine::redis::testing::until;
use crate::spool::redis::testing::{settings, Server};
use crate::spool::{Claim, Layout, Spool};

const LIMIT: Duration = Duration::from_secs(20);
const SPOOL: Token = Token(0);

fn open(server: &Server, dir: &Path) -> (RedisSpool, Poll) {
    let s = settings(server, "host-a", Duration::from_secs(30));
    let mut spool = RedisSpool::open("marie", &s, &Layout::new(dir)).expect("open");
    spool.wait_ready(LIMIT);
    let poll = Poll::new().expect("poll");
    spool.register(poll.registry(), SPOOL, Token(1)).expect("register");
    assert!(spool.leftovers().expect("leftovers").is_empty());
    (spool, poll)
}

/// Turns of the loop with `free` slots until its first claim is back (it finds the queue
/// empty), and one more.
fn idle(spool: &mut RedisSpool, free: usize) {
    spool.claim_slots(free);
    spool.commit();
    let quiet = until(LIMIT, || {
        spool.commit();
        (!spool.busy()).then_some(())
    });
    assert!(quiet.is_some(), "the first claim did not come back");
    spool.commit();
}

fn enqueue(server: &Server, id: &str) {
    let (mut e, q) = server.queue("marie", "producer");
    e.run(&q.enqueue(id, br#"{"description": "x"}"#, None, 0)).expect("enqueued");
}

/// What the loop is handed when its bell rings, without a batch of its own meanwhile.
fn intake_until_claimed(spool: &mut RedisSpool, poll: &Poll) -> Option<Vec<Claim>> {
    until(LIMIT, || {
        let i = spool.intake(poll.registry(), SPOOL).expect("intake");
        (!i.claimed.is_empty()).then_some(i.claimed)
    })
}

fn pending(server: &Server) -> i64 {
    let v: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(Fleet::new("ww").worker("marie").queue())
        .arg(GROUP)
        .query(server.engine().connection())
        .expect("xpending");
    match v.first() {
        Some(redis::Value::Int(n)) => *n,
        _ => 0,
    }
}

#[test]
fn an_arrival_is_claimed_by_the_wakeup_without_a_turn_of_the_loop() {
    let Some(server) = Server::start(&[]) else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (mut spool, poll) = open(&server, dir.path());
    idle(&mut spool, 2);
    enqueue(&server, "t1");
    let claimed = intake_until_claimed(&mut spool, &poll).expect("claimed only after a turn of the loop");
    assert_eq!(claimed.len(), 1);
    assert_eq!(spool.load(&claimed[0], 1 << 20, "marie").expect("a task").task.id, "t1");
    assert_eq!(pending(&server), 1);
    // Its slots are the loop's again: the next arrival is claimed for the one left.
    spool.claim_slots(1);
    spool.commit();
    enqueue(&server, "t2");
    let claimed = intake_until_claimed(&mut spool, &poll).expect("the second arrival was not claimed");
    assert_eq!(spool.load(&claimed[0], 1 << 20, "marie").expect("a task").task.id, "t2");
}

#[test]
fn no_claim_is_armed_for_slots_no_longer_free() {
    let Some(server) = Server::start(&[]) else { return };
    let dir = tempfile::tempdir().expect("dir");
    let (mut spool, poll) = open(&server, dir.path());
    idle(&mut spool, 2);
    // A task started (or the breaker opened): no slot is free.
    spool.claim_slots(0);
    spool.commit();
    enqueue(&server, "t1");
    let seen = until(LIMIT, || {
        let i = spool.intake(poll.registry(), SPOOL).expect("intake");
        assert!(i.claimed.is_empty(), "claimed with no free slot");
        spool.claims.more.then_some(())
    });
    assert!(seen.is_some(), "the arrival was not noticed");
    assert_eq!(pending(&server), 0, "nothing is delivered for slots that are not free");
    // A slot free again: the loop's own claim takes it.
    spool.claim_slots(1);
    let claimed = until(LIMIT, || {
        spool.commit();
        let i = spool.intake(poll.registry(), SPOOL).expect("intake");
        (!i.claimed.is_empty()).then_some(i.claimed)
    });
    assert_eq!(claimed.expect("claimed once a slot was free").len(), 1);
}
