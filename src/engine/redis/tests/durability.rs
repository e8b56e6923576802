//! The engine killed with kill -9 and started again from its AOF.

use super::*;
use crate::engine::redis::testing::Server;

#[test]
fn kill_9_of_the_engine_loses_no_acknowledged_enqueue_with_appendfsync_always() {
    let Some(mut srv) = Server::start(&[]) else { return };
    let (_, q) = srv.queue("marie", "host-a");
    let target = srv.target();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let producer = std::thread::spawn(move || {
        let mut e =
            crate::engine::redis::client::Engine::connect(&target, None, Duration::from_secs(5)).unwrap();
        for i in 0.. {
            let id = format!("t{i}");
            match e.run(&q.enqueue(&id, &doc(&id), None, 0)) {
                Ok(Reply::Queued { .. }) => {
                    if tx.send(id).is_err() {
                        return;
                    }
                }
                Ok(other) => panic!("{other:?}"),
                Err(_) => return, // the engine is gone: this one was not acknowledged
            }
        }
    });
    // Kill it once some enqueues are acknowledged, while more are being sent.
    let mut acked: Vec<String> = rx.iter().take(200).collect();
    srv.kill9();
    producer.join().unwrap();
    acked.extend(rx.try_iter());
    srv.restart();
    let (mut e, q) = srv.queue("marie", "host-a");
    for id in &acked {
        let phase: Option<String> = cmd(&mut e, &["HGET", &q.keys().task(id), "phase"]);
        assert_eq!(phase.as_deref(), Some("queued"), "{id} acknowledged but lost");
    }
    let len: usize = cmd(&mut e, &["XLEN", &q.keys().queue()]);
    assert!(len >= acked.len(), "{len} entries for {} acknowledged", acked.len());
    // Every entry recovered is whole: it claims into a task to run.
    let d = claim(&mut e, &q, len);
    assert_eq!(held(&d).len(), len, "an entry recovered without its task");
}
