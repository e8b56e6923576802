//! The I/O thread against a real server: batches, a kill -9 of the engine, reconnection.

use mio::{Events, Poll, Token, Waker};

use super::*;
use crate::engine::redis::io::{self, Batch, Event, Link, RedisIo, Replicas};
use crate::engine::redis::keys::Fleet;
use crate::engine::redis::ops::Queue;
use crate::engine::redis::testing::Server;

const WAKE: Token = Token(7);

/// Waits on the loop's poll until the thread reports an event that `want` accepts.
fn next<T>(poll: &mut Poll, io: &RedisIo, mut want: impl FnMut(Event) -> Option<T>) -> T {
    let mut events = Events::with_capacity(8);
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        for e in io.events() {
            if let Some(v) = want(e) {
                return v;
            }
        }
        assert!(std::time::Instant::now() < end, "no such event from the I/O thread");
        poll.poll(&mut events, Some(Duration::from_secs(1))).unwrap();
        assert!(events.iter().all(|e| e.token() == WAKE));
    }
}

#[test]
fn a_batch_is_one_round_trip_and_the_link_survives_an_engine_kill() {
    let Some(mut srv) = Server::start(&[]) else { return };
    let mut poll = Poll::new().unwrap();
    let waker = io::waker(Waker::new(poll.registry(), WAKE).unwrap());
    let target = srv.target();
    let keys = Fleet::new("ww").worker("marie");
    let q = Queue::new(keys.clone(), "host-a");
    let connect = Box::new(move || {
        let mut e = Engine::connect(&target, None, Duration::from_secs(2))?;
        e.ensure_groups(&keys)?;
        Ok(e)
    });
    let io = RedisIo::spawn(connect, waker, Duration::from_millis(20), Duration::from_millis(200)).unwrap();
    next(&mut poll, &io, |e| matches!(e, Event::Link(Link::Up)).then_some(()));

    let calls = (0..3).map(|i| q.enqueue(&format!("t{i}"), &doc("x"), None, 0)).chain([q.claim(2)]).collect();
    io.send(Batch { id: 1, calls, replicas: None }).unwrap();
    let replies = next(&mut poll, &io, |e| match e {
        Event::Done { batch: 1, replies, .. } => Some(replies),
        _ => None,
    });
    assert_eq!(replies.len(), 4);
    assert!(replies[..3].iter().all(|r| matches!(r, Ok(Reply::Queued { .. }))), "{replies:?}");
    assert!(matches!(&replies[3], Ok(Reply::Claimed { delivered, .. }) if delivered.len() == 2));

    srv.kill9();
    io.send(Batch { id: 2, calls: vec![q.claim(1)], replicas: None }).unwrap();
    let replies = next(&mut poll, &io, |e| match e {
        Event::Done { batch: 2, replies, .. } => Some(replies),
        _ => None,
    });
    assert!(matches!(&replies[0], Err(e) if e.needs_reconnect()), "{replies:?}");
    next(&mut poll, &io, |e| matches!(e, Event::Link(Link::Down { .. })).then_some(()));
    srv.restart();
    next(&mut poll, &io, |e| matches!(e, Event::Link(Link::Up)).then_some(()));

    // After the restart (AOF replayed): the third task, and a replica wait that no replica
    // answers (WAIT reports 0 after its timeout).
    let replicas = Some(Replicas { count: 1, timeout: Duration::from_millis(50), aof: false });
    io.send(Batch { id: 3, calls: vec![q.claim(1)], replicas }).unwrap();
    let (replies, replicated) = next(&mut poll, &io, |e| match e {
        Event::Done { batch: 3, replies, replicated, .. } => Some((replies, replicated)),
        _ => None,
    });
    let Ok(Reply::Claimed { delivered, .. }) = &replies[0] else { panic!("{replies:?}") };
    assert_eq!(delivered.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["t2"]);
    assert_eq!(replicated, Some(Ok(0)));
}
