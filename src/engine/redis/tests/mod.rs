//! The engine against a real server (testing.rs starts one per test).

mod delivery;
mod durability;
mod endings;
mod engine;
mod io;
mod lease;

use std::time::Duration;

use super::client::Engine;
use super::ops::{Held, Queue};
use super::reply::{Delivered, Fate, Reply};

pub(super) const TTL: Duration = Duration::from_secs(3600);

pub(super) fn doc(id: &str) -> Vec<u8> {
    format!(r#"{{"task_id":"{id}","description":"echo {id}"}}"#).into_bytes()
}

pub(super) fn enqueue(e: &mut Engine, q: &Queue, id: &str) -> Reply {
    e.run(&q.enqueue(id, &doc(id), None, 0)).expect("enqueue")
}

pub(super) fn claim(e: &mut Engine, q: &Queue, n: usize) -> Vec<Delivered> {
    e.run(&q.claim(n)).expect("claim").delivered().expect("claimed")
}

/// The held task of each delivery to run.
pub(super) fn held(d: &[Delivered]) -> Vec<Held> {
    d.iter().filter(|d| matches!(d.fate, Fate::Run(_))).map(Held::from).collect()
}

pub(super) fn cmd<T: redis::FromRedisValue>(e: &mut Engine, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(e.connection()).expect("command")
}
