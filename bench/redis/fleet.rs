//! The daemons on the engine, end to end (issue 16's benchmark): N tasks over H competing
//! `worker-watcher` processes ("hosts", each its own root and SPOOL_CONSUMER) with a no-op
//! agent; beside the same on the file spool (H workers sharing one queue folder, each with its
//! own LOCK_DIR); the pickup latency from the enqueue to the agent's start, one task at a
//! time, beside PING; the reclaim time after a host is killed; the engine's memory per
//! queued task and per kept result. Not a test: figures for bench/BENCHMARKS.md. See run.sh.
//!
//! fleet throughput always|everysec HOSTS N    (engine)
//! fleet files HOSTS N                         (file spool)
//! fleet pickup N [idle]                      (idle: each task after the last one's result)
//! fleet reclaim
//! fleet memory N
//!
//! Needs target/release/worker-watcher (or WW_WORKER_BIN), the stamp agent (bench/redis/stamp.c, built by run.sh
//! as target/release/ww-stamp) and redis-server (or WW_REDIS_SERVER) on the PATH.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use worker_watcher::engine::redis::client::Engine;
use worker_watcher::engine::redis::keys::Fleet;
use worker_watcher::engine::redis::ops::Queue;
use worker_watcher::engine::redis::settings::{Address, Target};

const W: &str = "bench";

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn server(dir: &Path, fsync: &str) -> (Procs, Target) {
    let sock = dir.join("sock");
    let bin = std::env::var("WW_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let child = Command::new(bin)
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    // Killed and waited for when dropped.
    let procs = Procs(vec![child]);
    let target = Target { address: Address::Unix(sock), username: None, db: 0 };
    for _ in 0..2000 {
        if Engine::connect(&target, None, Duration::from_secs(1)).is_ok() {
            return (procs, target);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("redis-server did not start");
}

fn url(t: &Target) -> String {
    match &t.address {
        Address::Unix(p) => format!("redis+unix://{}", p.display()),
        _ => unreachable!(),
    }
}

/// The daemon run: WW_WORKER_BIN, or this tree's release build (a before/after comparison
/// alternates two binaries).
fn worker_bin() -> PathBuf {
    std::env::var_os("WW_WORKER_BIN")
        .map_or_else(|| repo().join("target/release/worker-watcher"), PathBuf::from)
}

/// A worker process: `root` its spool root, `env` its settings over the bench's.
fn worker(root: &Path, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(worker_bin());
    cmd.arg(W)
        .arg("--root")
        .arg(root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CLAUDE_COMMAND", repo().join("target/release/ww-stamp"))
        .env("CLAUDE_ARGS", "")
        .env("ENABLE_METRICS", "false")
        .env("LOG_LEVEL", "warn")
        .env("MAX_CONCURRENT_TASKS", "4")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.with_extension("log")).expect("log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("worker-watcher")
}

fn engine_workers(dir: &Path, t: &Target, hosts: usize, extra: &[(&str, String)]) -> Procs {
    Procs(
        (0..hosts)
            .map(|h| {
                let root = dir.join(format!("host{h}"));
                std::fs::create_dir_all(&root).expect("root");
                let mut env = vec![("SPOOL", url(t)), ("SPOOL_CONSUMER", format!("host-{h}"))];
                env.extend(extra.iter().cloned());
                worker(&root, &env)
            })
            .collect(),
    )
}

fn int(e: &mut Engine, cmd: &mut redis::Cmd) -> i64 {
    cmd.query::<i64>(e.connection()).unwrap_or(0)
}

fn enqueue_all(e: &mut Engine, q: &Queue, n: usize, prefix: &str) -> Duration {
    let t0 = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let calls: Vec<_> = chunk
            .iter()
            .map(|i| {
                let id = format!("{prefix}{i}");
                let doc = format!(r#"{{"task_id":"{id}","description":"noop"}}"#);
                q.enqueue(&id, doc.as_bytes(), None, 0)
            })
            .collect();
        for r in e.run_batch(&calls).expect("enqueue") {
            r.expect("enqueued");
        }
    }
    t0.elapsed()
}

fn throughput(fsync: &str, hosts: usize, n: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let (_srv, t) = server(dir.path(), fsync);
    let mut e = Engine::connect(&t, None, Duration::from_secs(30)).expect("connect");
    let keys = Fleet::new("ww").worker(W);
    e.ensure_groups(&keys).expect("groups");
    let q = Queue::new(keys.clone(), "bench");
    let took = enqueue_all(&mut e, &q, n, "t");
    println!("enqueue {n} (pipelined, 5000 a batch): {:.0} tasks/s", n as f64 / took.as_secs_f64());
    let t0 = Instant::now();
    let _w = engine_workers(dir.path(), &t, hosts, &[]);
    let results = Fleet::new("ww").results();
    loop {
        let done = int(&mut e, redis::cmd("XLEN").arg(&results));
        if done as usize >= n {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(1800), "stuck at {done}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = t0.elapsed();
    println!(
        "engine appendfsync {fsync}, {hosts} hosts x MAX_CONCURRENT_TASKS=4, {n} tasks: {:.1} s, {:.0} tasks/s",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    );
}

fn files(hosts: usize, n: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("root");
    let queue = root.join("tasks").join(W);
    std::fs::create_dir_all(&queue).expect("queue");
    for i in 0..n {
        let doc = format!(r#"{{"task_id":"t{i}","description":"noop"}}"#);
        std::fs::write(queue.join(format!("t{i}.json")), doc).expect("task");
    }
    let t0 = Instant::now();
    let _w = Procs(
        (0..hosts)
            .map(|h| {
                worker(&root, &[("LOCK_DIR", dir.path().join(format!("lock{h}")).display().to_string())])
            })
            .collect(),
    );
    let results = root.join("results").join(W);
    loop {
        let done = std::fs::read_dir(&results).map(|d| d.count()).unwrap_or(0);
        if done >= n {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(1800), "stuck at {done}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = t0.elapsed();
    println!(
        "file spool, {hosts} workers (LOCK_DIR each) x MAX_CONCURRENT_TASKS=4, {n} tasks: {:.1} s, {:.0} tasks/s",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    );
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos()
}

/// The pickup: N tasks one at a time, each enqueued once the last one's agent started (its
/// completion runs meanwhile, as in a busy fleet), or with `idle` once the last one's result is
/// written and 3 ms more have passed (the worker idle).
fn pickup(n: usize, idle: bool) {
    let dir = tempfile::tempdir().expect("dir");
    let (_srv, t) = server(dir.path(), "everysec");
    let mut e = Engine::connect(&t, None, Duration::from_secs(30)).expect("connect");
    let keys = Fleet::new("ww").worker(W);
    e.ensure_groups(&keys).expect("groups");
    let q = Queue::new(keys, "bench");
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).expect("stamps");
    let _w = engine_workers(dir.path(), &t, 1, &[("WW_STAMP_DIR", stamps.display().to_string())]);
    let mut ping = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let _: String = redis::cmd("PING").query(e.connection()).expect("ping");
        ping.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    // The first task waits for the worker to be up.
    let mut lat = Vec::new();
    for i in 0..=n {
        let id = format!("p{i}");
        let doc = format!(r#"{{"task_id":"{id}","description":"noop"}}"#);
        let t0 = now_ns();
        e.run(&q.enqueue(&id, doc.as_bytes(), None, 0)).expect("enqueue");
        let stamp = stamps.join(&id);
        let started = Instant::now();
        let at: u128 = loop {
            if let Some(v) = std::fs::read_to_string(&stamp).ok().and_then(|s| s.trim().parse().ok()) {
                break v;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no start of {id}");
            std::thread::sleep(Duration::from_micros(200));
        };
        if i > 0 {
            lat.push((at.saturating_sub(t0)) as f64 / 1e3);
        }
        let results = Fleet::new("ww").results();
        while idle && (int(&mut e, redis::cmd("XLEN").arg(&results)) as usize) <= i {
            assert!(started.elapsed() < Duration::from_secs(60), "no result of {id}");
            std::thread::sleep(Duration::from_micros(200));
        }
        if idle {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    println!(
        "PING round trip: p50 {:.0} us, p99 {:.0} us; pickup (enqueue to the agent's start, n={n}{}): p50 {:.0} us, p99 {:.0} us",
        pct(&mut ping, 0.5),
        pct(&mut ping, 0.99),
        if idle { ", idle" } else { "" },
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
}

fn reclaim() {
    let dir = tempfile::tempdir().expect("dir");
    let (_srv, t) = server(dir.path(), "everysec");
    let mut e = Engine::connect(&t, None, Duration::from_secs(30)).expect("connect");
    let keys = Fleet::new("ww").worker(W);
    e.ensure_groups(&keys).expect("groups");
    let q = Queue::new(keys.clone(), "bench");
    let env = |host: &str| {
        [
            ("HEARTBEAT_INTERVAL", "1".to_string()),
            ("LEASE", "3".to_string()),
            ("WW_STAMP_SLEEP", "30".to_string()),
            ("SPOOL_CONSUMER", host.to_string()),
            // Four slots each: host b has room for every entry of host a's.
            ("MAX_CONCURRENT_TASKS", "4".to_string()),
        ]
    };
    let mut a = engine_workers(&dir.path().join("a"), &t, 1, &env("host-a"));
    // Four long tasks, all on host a (a host claims for all its free slots at once: started
    // together, whichever woke first took all four), then host b up beside it.
    enqueue_all(&mut e, &q, 4, "long");
    let held = |e: &mut Engine, who: &str| -> i64 {
        let v: redis::Value = redis::cmd("XPENDING")
            .arg(keys.queue())
            .arg("workers")
            .arg("-")
            .arg("+")
            .arg(100)
            .arg(who)
            .query(e.connection())
            .expect("xpending");
        match v {
            redis::Value::Array(a) => a.len() as i64,
            _ => 0,
        }
    };
    let t0 = Instant::now();
    while held(&mut e, "host-a") < 4 {
        assert!(t0.elapsed() < Duration::from_secs(60), "host a took nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _b = engine_workers(&dir.path().join("b"), &t, 1, &env("host-b"));
    let beat = keys.heartbeat("host-b");
    while int(&mut e, redis::cmd("EXISTS").arg(&beat)) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "host b never beat");
        std::thread::sleep(Duration::from_millis(10));
    }
    let on_a = held(&mut e, "host-a");
    let killed = Instant::now();
    let _ = a.0[0].kill();
    let _ = a.0[0].wait();
    while held(&mut e, "host-a") == on_a {
        assert!(killed.elapsed() < Duration::from_secs(60), "never reclaimed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = killed.elapsed();
    while held(&mut e, "host-a") > 0 && killed.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = held(&mut e, "host-a");
    let all = match left {
        0 => format!("all by {:.2} s", killed.elapsed().as_secs_f64()),
        n => format!("{n} still held by the dead host 20 s after the kill"),
    };
    println!(
        "reclaim: host a killed (kill -9) holding {on_a} of 4 entries, host b 4 slots, LEASE=3 s, HEARTBEAT_INTERVAL=1 s: first taken over {:.2} s after the kill; {all}",
        first.as_secs_f64()
    );
}

fn used(e: &mut Engine) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(e.connection()).expect("info");
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn memory(n: usize) {
    let dir = tempfile::tempdir().expect("dir");
    let (_srv, t) = server(dir.path(), "everysec");
    let mut e = Engine::connect(&t, None, Duration::from_secs(30)).expect("connect");
    let keys = Fleet::new("ww").worker(W);
    e.ensure_groups(&keys).expect("groups");
    let q = Queue::new(keys, "bench");
    let base = used(&mut e);
    enqueue_all(&mut e, &q, n, "m");
    let queued = used(&mut e);
    let _w = engine_workers(dir.path(), &t, 1, &[]);
    let results = Fleet::new("ww").results();
    while (int(&mut e, redis::cmd("XLEN").arg(&results)) as usize) < n {
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = used(&mut e);
    println!(
        "memory: {:.0} bytes per queued task (a 50-byte task), {:.0} bytes per kept result (its key and its results-stream entry), n={n}",
        (queued - base) as f64 / n as f64,
        (done - base) as f64 / n as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(&args[1], arg(2, 2), arg(3, 10_000)),
        Some("files") => files(arg(1, 2), arg(2, 10_000)),
        Some("pickup") => pickup(arg(1, 200), args.get(2).is_some_and(|a| a == "idle")),
        Some("reclaim") => reclaim(),
        Some("memory") => memory(arg(1, 10_000)),
        _ => eprintln!(
            "usage: fleet throughput always|everysec HOSTS N | files HOSTS N | pickup N [idle] | reclaim | memory N"
        ),
    }
}
