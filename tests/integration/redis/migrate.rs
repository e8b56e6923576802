//! `watcherctl spool import W` and `spool export W` with the real binaries on a real engine:
//! a stopped file worker's queue, a task waiting for its retry (its attempts and history) and
//! a dead letter move to the engine, where an engine worker runs the tasks with their state;
//! then the engine's queue, a retry waiting in its delayed set and the dead letter move back,
//! where a file worker runs them. Running either twice changes nothing; a task the other side
//! holds already is skipped and reported; a running worker on the source is refused (75).

use std::fs;

use serde_json::{json, Value};

use crate::support::ctl::Ran;
use crate::support::redis_ops::{ctl_env, Server};
use crate::support::util::*;
use worker_watcher::engine::redis::client::Engine;
use worker_watcher::engine::redis::keys::Fleet;
use worker_watcher::engine::redis::ops::{Held, Queue};
use worker_watcher::engine::redis::settings::{Address, Target};

const W: &str = "marie";

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64()
}

fn write(path: &std::path::Path, v: &Value) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, serde_json::to_vec(v).expect("json")).expect("write");
}

fn dead_letter(id: &str) -> Value {
    json!({"task_id": id, "worker": W, "reason": "exit_code", "message": "exit status 3",
           "dead_lettered_at": "2026-01-01T00:00:00Z", "attempts": 2, "history": [],
           "source_file": format!("{id}.json"), "hostname": "old-host",
           "task": {"task_id": id, "description": "echo again"}})
}

fn result(s: &Server, id: &str) -> Option<Value> {
    let key = Fleet::new("ww").worker(W).result(id);
    serde_json::from_str(&s.text(&["GET", &key])?).ok()
}

fn moved(r: &Ran, n_tasks: usize, n_letters: usize) {
    let line = format!("{n_tasks} tasks and {n_letters} dead letters");
    assert!(r.stdout.contains(&line), "expected `{line}`: {r:#?}");
}

#[test]
fn import_then_export_moves_queue_retry_state_and_dead_letters_both_ways() {
    let root = Root::new();
    let Some(engine) = Server::unix(&root.path().join("engine"), &[]) else { return };
    let url = engine.url();
    let spool = [("SPOOL", url.as_str())];
    let k = Fleet::new("ww").worker(W);

    // A file worker running: its queue is not taken from under it.
    let mut w = Worker::start(&root, W, &[]);
    let r = ctl_env(&root, &spool, &["spool", "import", W]).expect(75);
    assert!(r.stderr.contains("stop it first"), "{r:#?}");
    w.stop();

    // The folders: two queued tasks, one waiting for its retry with one failed attempt, a
    // dead letter with the original kept beside it, and one task the engine holds already.
    root.submit(W, "a1", "echo one");
    root.submit(W, "a2", "echo two");
    let history = json!([{"attempt": 1, "reason": "exit_code", "message": "exit status 1"}]);
    let waiting = json!({"task_id": "a3", "description": "echo three",
        "_watcher": {"attempts": 1, "retry_at": now() + 1.0, "history": history}});
    write(&root.inflight(W).join("a3.json"), &waiting);
    write(&root.path().join("dlq").join(W).join("d1.json"), &dead_letter("d1"));
    fs::create_dir_all(root.queue(W).join(".rejected")).expect("mkdir");
    fs::write(root.queue(W).join(".rejected/d1.orig"), b"the original").expect("orig");
    root.submit(W, "clash", "echo on the files");
    let target = Target { address: Address::Unix(engine.socket()), username: None, db: 0 };
    let mut c = Engine::connect(&target, None, std::time::Duration::from_secs(5)).expect("connect");
    c.ensure_groups(&k).expect("groups");
    let q = Queue::new(k.clone(), "test");
    let other = json!({"task_id": "clash", "description": "echo on the engine"}).to_string();
    c.run(&q.enqueue("clash", other.as_bytes(), None, 0)).expect("enqueue");

    let r = ctl_env(&root, &spool, &["spool", "import", W]).expect(65);
    moved(&r, 3, 1);
    assert!(r.stdout.contains("skipped  task clash"), "{r:#?}");
    assert!(r.stderr.contains("clash"), "{r:#?}");
    assert_eq!(names(&root.queue(W)), vec!["clash.json"], "moved files are set aside, the clash stays");
    assert_eq!(names(&root.queue(W).join(".imported")), vec!["a1.json", "a2.json", "a3.json"]);
    let state: Value =
        serde_json::from_str(&engine.text(&["HGET", &k.task("a3"), "state"]).expect("a3's state"))
            .expect("json");
    assert_eq!(state["attempts"], 1);
    assert_eq!(state["history"][0]["reason"], "exit_code");
    assert!(engine.text(&["HGET", &k.dlq(), "d1"]).is_some());
    assert_eq!(engine.text(&["HGET", &k.originals(), "d1"]).as_deref(), Some("the original"));

    // Again: nothing moves, the engine is as it was.
    let before = (engine.int(&["XLEN", &k.queue()]), engine.int(&["HLEN", &k.dlq()]));
    let r = ctl_env(&root, &spool, &["spool", "import", W]).expect(65);
    moved(&r, 0, 0);
    assert_eq!((engine.int(&["XLEN", &k.queue()]), engine.int(&["HLEN", &k.dlq()])), before);
    fs::remove_file(root.queue(W).join("clash.json")).expect("rm");
    let r = ctl_env(&root, &spool, &["spool", "import", W]).expect(0);
    moved(&r, 0, 0);

    // A worker on the engine runs them, the waiting one as its second attempt.
    let mut w = Worker::start(&root, W, &spool);
    let r = ctl_env(&root, &spool, &["spool", "export", W]).expect(75);
    assert!(r.stderr.contains("stop it first"), "{r:#?}");
    for id in ["a1", "a2", "a3", "clash"] {
        let res = wait_for(&format!("{id}'s result on the engine"), || result(&engine, id));
        assert_eq!(res["status"], "completed", "{res}");
    }
    assert_eq!(result(&engine, "a3").expect("a3")["attempts"], 2, "the saved attempt counts");
    let r = ctl_env(&root, &spool, &["dlq", "list", W]).expect(0);
    assert!(r.stdout.contains("d1"), "{r:#?}");
    w.stop();

    // The engine: two queued tasks, and one waiting in the delayed set after a failed attempt.
    for (id, what) in [("b1", "echo four"), ("b2", "echo five"), ("b3", "echo six")] {
        let doc = json!({"task_id": id, "description": what}).to_string();
        c.run(&q.enqueue(id, doc.as_bytes(), None, 0)).expect("enqueue");
    }
    let gone = Queue::new(k.clone(), "gone-host");
    let claimed = c.run(&gone.claim(3)).expect("claim").delivered().expect("delivered");
    let b3 = claimed.iter().find(|d| d.id == "b3").expect("b3 claimed");
    let held = Held { id: "b3".into(), entry: b3.entry.clone() };
    let st = json!({"attempts": 1, "history": history}).to_string();
    c.run(&gone.retry_later(&held, st.as_bytes(), std::time::Duration::from_millis(800)))
        .expect("retry later");

    let r = ctl_env(&root, &spool, &["spool", "export", W]).expect(0);
    moved(&r, 3, 1);
    assert_eq!(names(&root.queue(W)), vec!["b1.json", "b2.json", "b3.json"]);
    let b3 = read_json(&root.queue(W).join("b3.json")).expect("b3");
    assert_eq!(b3["_watcher"]["attempts"], 1, "{b3}");
    assert!(b3["_watcher"]["retry_at"].as_f64().is_some(), "{b3}");
    let b1 = read_json(&root.queue(W).join("b1.json")).expect("b1");
    assert_eq!(b1["_watcher"]["reclaims"], 1, "held by a host that is gone: a reclaim, {b1}");
    assert_eq!(read_json(&root.path().join("dlq").join(W).join("d1.json")), Some(dead_letter("d1")));
    assert_eq!(fs::read(root.queue(W).join(".rejected/d1.orig")).expect("orig"), b"the original");
    assert_eq!(engine.int(&["XLEN", &k.queue()]), 0, "nothing left on the engine");
    assert_eq!(engine.int(&["ZCARD", &k.delayed()]), 0);
    assert_eq!(engine.int(&["HLEN", &k.dlq()]), 0);
    assert_eq!(engine.int(&["EXISTS", &k.task("b3")]), 0);
    let r = ctl_env(&root, &spool, &["spool", "export", W]).expect(0);
    moved(&r, 0, 0);

    // A file worker runs them; the dead letter is retried from the folders.
    ctl_env(&root, &[], &["dlq", "retry", W, "d1"]).expect(0);
    let mut w = Worker::start(&root, W, &[]);
    for id in ["b1", "b2", "b3", "d1"] {
        let res = root.wait_result(W, id);
        assert_eq!(res["status"], "completed", "{res}");
    }
    assert_eq!(root.result(W, "b3").expect("b3")["attempts"], 2, "the saved attempt counts");
    w.stop();
}

#[test]
fn spool_check_reports_the_engine_and_the_verdict() {
    let root = Root::new();
    let Some(safe) = Server::unix(&root.path().join("safe"), &[]) else { return };
    let url = safe.url();
    let r = ctl_env(&root, &[("SPOOL", &url)], &["spool", "check"]).expect(0);
    for line in [
        "appendonly            yes",
        "appendfsync           always",
        "maxmemory-policy      noeviction",
        "verdict               safe",
    ] {
        assert!(r.stdout.contains(line), "`{line}`: {r:#?}");
    }
    let Some(bad) =
        Server::unix(&root.path().join("bad"), &["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"])
    else {
        return;
    };
    let url = bad.url();
    let r = ctl_env(&root, &[("SPOOL", &url)], &["spool", "check"]).expect(78);
    assert!(r.stdout.contains("refused (exit 78)"), "{r:#?}");
    assert!(r.stderr.contains("appendonly"), "{r:#?}");
    ctl_env(&root, &[], &["spool", "check"]).expect(78);
    let r = ctl_env(&root, &[("SPOOL", "redis+unix:///nonexistent/sock")], &["spool", "check"]).expect(74);
    assert!(r.stderr.contains("cannot reach"), "{r:#?}");
}
