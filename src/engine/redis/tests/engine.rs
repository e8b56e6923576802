//! The engine's settings checked live, fleet-stream trimming, the shared pause, spend and
//! heartbeats.

use super::*;
use crate::engine::redis::check::{check, Unsafe};
use crate::engine::redis::keys::Fleet;
use crate::engine::redis::testing::Server;

#[test]
fn unsafe_engine_settings_are_named() {
    let Some(srv) = Server::start(&[]) else { return };
    let v = check(&mut srv.engine()).unwrap();
    assert!(v.safe(), "{v:?}");
    assert_eq!(v.appendfsync, "always");
    let Some(srv) = Server::start(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]) else {
        return;
    };
    let v = check(&mut srv.engine()).unwrap();
    assert_eq!(v.refusals, vec![Unsafe::AppendOnlyOff, Unsafe::Evicting("allkeys-lru".into())]);
    eprintln!("engine: {} (WAITAOF: {})", v.server, v.waitaof);
}

#[test]
fn fleet_streams_are_trimmed_only_below_every_groups_cursor() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut e, q) = srv.queue("marie", "host-a");
    let fleet = Fleet::new("ww");
    let results = fleet.results();
    for i in 0..5 {
        enqueue(&mut e, &q, &format!("t{i}"));
    }
    for h in held(&claim(&mut e, &q, 5)) {
        e.run(&q.complete(&h, b"{}", crate::engine::redis::ops::Status::Completed, TTL)).unwrap();
    }
    // The listener read three and acknowledged the first two: the third is pending.
    let _: redis::Value =
        cmd(&mut e, &["XREADGROUP", "GROUP", "listener", "l1", "COUNT", "3", "STREAMS", &results, ">"]);
    let entries: Vec<(String, Vec<String>)> = cmd(&mut e, &["XRANGE", &results, "-", "+"]);
    let ids: Vec<String> = entries.into_iter().map(|(id, _)| id).collect();
    let _: i64 = cmd(&mut e, &["XACK", &results, "listener", &ids[0], &ids[1]]);
    let r = e.run(&fleet.trim(&results, Duration::ZERO)).unwrap();
    assert_eq!(r, Reply::Trimmed { count: 2, min_id: ids[2].clone() });
    let left: usize = cmd(&mut e, &["XLEN", &results]);
    assert_eq!(left, 3, "the pending entry and the unread ones stay");
    // A reader without a group keeps what is younger than `keep`.
    let r = e.run(&fleet.trim(&results, Duration::from_secs(3600))).unwrap();
    assert!(matches!(r, Reply::Trimmed { count: 0, .. }), "{r:?}");
    let _: () = cmd(&mut e, &["XADD", "ww:nogroup", "*", "a", "b"]);
    assert_eq!(
        e.run(&fleet.trim("ww:nogroup", Duration::ZERO)).unwrap(),
        Reply::Untrimmed { why: "no consumer group".into() }
    );
}

#[test]
fn spend_is_shared_and_heartbeats_list_each_host() {
    let Some(srv) = Server::start(&[]) else { return };
    let (mut a, qa) = srv.queue("marie", "host-a");
    let (mut b, qb) = srv.queue("marie", "host-b");
    assert_eq!(a.run(&qa.spend(0.25, 5)).unwrap(), Reply::Spent { usd: 0.25 });
    assert_eq!(b.run(&qb.spend(0.5, 5)).unwrap(), Reply::Spent { usd: 0.75 });
    assert_eq!(a.run(&qa.spend(0.0, 5)).unwrap(), Reply::Spent { usd: 0.75 });
    assert!(matches!(
        a.run(&qa.heartbeat(b"{}", Duration::from_secs(30))).unwrap(),
        Reply::HeartbeatAt { .. }
    ));
    assert!(matches!(
        b.run(&qb.heartbeat(b"{}", Duration::from_secs(30))).unwrap(),
        Reply::HeartbeatAt { .. }
    ));
    let hosts: Vec<String> = cmd(&mut a, &["ZRANGE", &qa.keys().hosts(), "0", "-1"]);
    assert_eq!(hosts, ["host-a", "host-b"]);
    let ttl: i64 = cmd(&mut a, &["PTTL", &qa.keys().heartbeat("host-a")]);
    assert!(ttl > 0);
    // A pause is kept when a shorter one is asked for.
    assert_eq!(a.run(&qa.pause(Duration::from_secs(60), "x")).unwrap(), Reply::PauseFor { ms: 60000 });
    assert!(
        matches!(b.run(&qb.pause(Duration::from_secs(1), "y")).unwrap(), Reply::PauseFor { ms } if ms > 1000)
    );
    let r = b.run(&qb.reclaim(Duration::ZERO, 1, "0-0")).unwrap();
    assert!(matches!(r, Reply::Paused { .. }), "no reclaim while paused: {r:?}");
}
