//! Round trip of each engine script on a unix socket, beside the engine's own ceiling (a bare
//! XREADGROUP/XACK loop) and beside a PING, and the pickup latency of the two wake-up designs.
//! Not a test: figures for docs/redis.md. See run.sh.
//!
//! cargo run --release --example redis-engine -- [always|everysec] [N]
//! (WW_REDIS_SERVER names the server binary; default redis-server from PATH.)

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use worker_watcher::engine::redis::client::Engine;
use worker_watcher::engine::redis::keys::Fleet;
use worker_watcher::engine::redis::ops::{Held, Queue, Status};
use worker_watcher::engine::redis::reply::Reply;
use worker_watcher::engine::redis::settings::{Address, Target};

/// The server and its folder (removed when dropped).
struct Server(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(fsync: &str) -> (Server, Target) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("sock");
    let bin = std::env::var("WW_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let child = Command::new(bin)
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let server = Server(child, dir);
    let target = Target { address: Address::Unix(sock), username: None, db: 0 };
    for _ in 0..2000 {
        if Engine::connect(&target, None, Duration::from_secs(1)).is_ok() {
            return (server, target);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("redis-server did not start");
}

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

fn report(name: &str, v: Vec<Duration>) {
    println!(
        "{name:<34} p50 {:>8.1} us   p99 {:>8.1} us   (n={})",
        pct(v.clone(), 0.5),
        pct(v.clone(), 0.99),
        v.len()
    );
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn held(r: Reply) -> Vec<Held> {
    r.delivered().expect("claimed").iter().map(Held::from).collect()
}

fn scripts(e: &mut Engine, q: &Queue, n: usize) {
    let doc = br#"{"task_id":"x","description":"no-op"}"#;
    let t = |name: &str, f: &mut dyn FnMut(usize) -> Duration| report(name, (0..n).map(&mut *f).collect());
    let ping = |e: &mut Engine| redis::cmd("PING").query::<String>(e.connection()).expect("ping");
    t("PING (the round trip)", &mut |_| time(|| ping(e)).1);
    t("enqueue", &mut |i| time(|| e.run(&q.enqueue(&format!("a{i}"), doc, None, 0)).unwrap()).1);
    t("enqueue, duplicate refused", &mut |i| {
        time(|| e.run(&q.enqueue(&format!("a{i}"), doc, None, 0)).unwrap()).1
    });
    t("enqueue with 90 % memory limit", &mut |i| {
        time(|| e.run(&q.enqueue(&format!("m{i}"), doc, None, 90)).unwrap()).1
    });
    let mut hs = Vec::new();
    t("claim 1", &mut |_| {
        let (r, d) = time(|| e.run(&q.claim(1)).unwrap());
        hs.extend(held(r));
        d
    });
    t("renew 1 entry", &mut |i| time(|| e.run(&q.renew([hs[i].entry.as_str()])).unwrap()).1);
    let ten: Vec<&str> = hs.iter().take(10).map(|h| h.entry.as_str()).collect();
    t("renew 10 entries", &mut |_| time(|| e.run(&q.renew(ten.iter().copied())).unwrap()).1);
    t("heartbeat", &mut |_| {
        time(|| e.run(&q.heartbeat(b"{\"status\":\"busy\"}", Duration::from_secs(30))).unwrap()).1
    });
    let result = vec![b'r'; 2048];
    t("complete (2 KiB result)", &mut |i| {
        time(|| e.run(&q.complete(&hs[i], &result, Status::Completed, Duration::from_secs(3600))).unwrap()).1
    });
    let mut hs: Vec<Held> = Vec::new();
    for _ in 0..n {
        hs.extend(held(e.run(&q.claim(1)).unwrap()));
    }
    t("retry_later", &mut |i| {
        time(|| e.run(&q.retry_later(&hs[i], b"{\"attempts\":1}", Duration::ZERO)).unwrap()).1
    });
    t("promote (up to 1 due)", &mut |_| time(|| e.run(&q.promote(1)).unwrap()).1);
    let mut hs: Vec<Held> = Vec::new();
    for _ in 0..n {
        hs.extend(held(e.run(&q.claim(1)).unwrap()));
    }
    t("reclaim (none idle)", &mut |_| {
        time(|| e.run(&q.reclaim(Duration::from_secs(3600), 1, "0-0")).unwrap()).1
    });
    t("dead_letter", &mut |i| {
        time(|| {
            e.run(&q.dead_letter(
                &hs[i],
                b"{}",
                None,
                Some(b"{\"status\":\"failed\"}"),
                Duration::from_secs(3600),
            ))
            .unwrap()
        })
        .1
    });
    t("dlq_retry", &mut |i| time(|| e.run(&q.dlq_retry(&hs[i].id, None)).unwrap()).1);
}

/// Tasks/s through claim(1) + complete, against XREADGROUP COUNT 1 + XACK/XDEL.
fn throughput(e: &mut Engine, q: &Queue, n: usize) {
    let doc = br#"{"task_id":"x","description":"no-op"}"#;
    let batch: Vec<_> = (0..n).map(|i| q.enqueue(&format!("b{i}"), doc, None, 0)).collect();
    let (_, d) = time(|| e.run_batch(&batch).unwrap());
    println!("{:<34} {:>8.0} tasks/s (pipelined, one batch)", "enqueue", n as f64 / d.as_secs_f64());
    let (_, d) = time(|| {
        for _ in 0..n {
            let h = held(e.run(&q.claim(1)).unwrap());
            e.run(&q.complete(&h[0], b"{}", Status::Completed, Duration::from_secs(3600))).unwrap();
        }
    });
    println!("{:<34} {:>8.0} tasks/s", "claim 1 + complete, one by one", n as f64 / d.as_secs_f64());
    let s = "ceiling:q";
    let c = e.connection();
    let _: () = redis::cmd("XGROUP").arg("CREATE").arg(s).arg("g").arg("0").arg("MKSTREAM").query(c).unwrap();
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("XADD").arg(s).arg("*").arg("id").arg(i).ignore();
    }
    p.exec(c).unwrap();
    let (_, d) = time(|| {
        for _ in 0..n {
            let r: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("c")
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(s)
                .arg(">")
                .query(c)
                .unwrap();
            let id = r.keys[0].ids[0].id.clone();
            redis::pipe()
                .cmd("XACK")
                .arg(s)
                .arg("g")
                .arg(&id)
                .ignore()
                .cmd("XDEL")
                .arg(s)
                .arg(&id)
                .ignore()
                .exec(c)
                .unwrap();
        }
    });
    println!("{:<34} {:>8.0} tasks/s", "ceiling: XREADGROUP + XACK/XDEL", n as f64 / d.as_secs_f64());
}

/// From XADD (enqueue) to the task claimed: a blocking XREAD on a second connection wakes,
/// then the claim script runs; beside a blocking XREADGROUP that claims by itself.
fn pickup(target: &Target, q: &Queue, n: usize) {
    let mut producer = Engine::connect(target, None, Duration::from_secs(5)).unwrap();
    for (k, design) in ["XREAD BLOCK + claim script", "XREADGROUP BLOCK (no script)"].into_iter().enumerate()
    {
        let (tx, rx) = mpsc::channel::<Instant>();
        let (t2, q2) = (target.clone(), q.clone());
        let scripted = design.starts_with("XREAD ");
        let waiter = std::thread::spawn(move || {
            let mut e = Engine::connect(&t2, None, Duration::from_secs(5)).unwrap();
            e.set_read_timeout(None).unwrap();
            let mut last = match e.run(&q2.claim(1)).unwrap() {
                Reply::Claimed { cursor, .. } => cursor,
                other => panic!("{other:?}"),
            };
            for _ in 0..n {
                let stream = q2.keys().queue();
                if scripted {
                    let _: redis::Value = redis::cmd("XREAD")
                        .arg("BLOCK")
                        .arg(0)
                        .arg("COUNT")
                        .arg(1)
                        .arg("STREAMS")
                        .arg(&stream)
                        .arg(&last)
                        .query(e.connection())
                        .unwrap();
                    let Reply::Claimed { cursor, delivered } = e.run(&q2.claim(1)).unwrap() else { panic!() };
                    assert_eq!(delivered.len(), 1);
                    last = cursor;
                } else {
                    let _: redis::Value = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg("workers")
                        .arg("raw")
                        .arg("COUNT")
                        .arg(1)
                        .arg("BLOCK")
                        .arg(0)
                        .arg("STREAMS")
                        .arg(&stream)
                        .arg(">")
                        .query(e.connection())
                        .unwrap();
                }
                tx.send(Instant::now()).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut lat = Vec::new();
        for i in 0..n {
            let t0 = Instant::now();
            producer.run(&q.enqueue(&format!("p{k}-{i}"), b"{}", None, 0)).unwrap();
            lat.push(rx.recv().unwrap() - t0);
        }
        waiter.join().unwrap();
        report(&format!("pickup: {design}"), lat);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let fsync = args.get(1).map(String::as_str).unwrap_or("always");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let (_server, target) = start(fsync);
    let mut e = Engine::connect(&target, None, Duration::from_secs(5)).unwrap();
    let v = worker_watcher::engine::redis::check::check(&mut e).unwrap();
    println!("# {} appendfsync {fsync}, unix socket, n={n}", v.server);
    let fleet = Fleet::new("ww");
    let q = Queue::new(fleet.worker("bench"), "host-a");
    e.ensure_groups(q.keys()).unwrap();
    scripts(&mut e, &q, n);
    let q2 = Queue::new(fleet.worker("flow"), "host-a");
    e.ensure_groups(q2.keys()).unwrap();
    throughput(&mut e, &q2, n * 5);
    let q3 = Queue::new(fleet.worker("pickup"), "host-a");
    e.ensure_groups(q3.keys()).unwrap();
    pickup(&target, &q3, n / 4);
}
