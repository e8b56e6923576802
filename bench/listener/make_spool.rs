//! Builds a spool for bench/listener: WORKERS workers × RESULTS results each, as the workers
//! write them (a result file of about 1 KB: Claude-style output, metadata with a batch of
//! 100, agent figures), with mtimes two days to one day old (so a first start counts them
//! without announcing them: LISTENER_BACKFILL is a day), and a fresh heartbeat per worker.
//!
//!     cargo run --release --example listener-spool -- ROOT [WORKERS] [RESULTS]
//!     cargo run --release --example listener-spool -- ROOT --touch   # one new result per worker
//!
//! Not a test and not part of the daemons: plain file writes, no fsync (the bench measures
//! the listener reading a spool, not how it was made).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn result(worker: &str, id: &str, i: usize, finished: SystemTime) -> String {
    let t = humantime::format_rfc3339_millis(finished);
    let status = if i % 10 == 9 {
        r#""status":"failed","reason":"exit_code","exit_code":1"#
    } else {
        r#""status":"completed","exit_code":0"#
    };
    format!(
        r#"{{"task_id":"{id}","worker":"{worker}",{status},"output":{{"type":"result","subtype":"success","is_error":false,"result":"Summary of the report, paragraph by paragraph: the findings, the open questions, and what to do next. {i}","session_id":"s-{id}","num_turns":3,"total_cost_usd":0.0123}},"output_truncated":false,"output_bytes":412,"stderr_tail":"","attempts":1,"started_at":"{t}","finished_at":"{t}","duration_seconds":{d},"hostname":"bench","metadata":{{"batch":"{worker}-b{b}","batch_size":100,"origin":"bench"}},"agent":{{"is_error":false,"session_id":"s-{id}","num_turns":3,"total_cost_usd":0.0123,"input_tokens":1200,"output_tokens":340,"cache_creation_input_tokens":0,"cache_read_input_tokens":800}}}}"#,
        d = 5.0 + (i % 600) as f64,
        b = i / 100,
    ) + "\n"
}

fn heartbeat(root: &Path, worker: &str) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let hb = format!(
        r#"{{"worker":"{worker}","pid":1,"hostname":"bench","timestamp":{now},"status":"idle","active_tasks":0,"queue_size":0,"max_concurrent":3,"processed":0,"failed":0,"retried":0,"dead_lettered":0,"circuit_state":"closed","started_at":{now},"heartbeat_interval":10.0,"version":"bench"}}"#
    );
    let dir = root.join("heartbeats");
    fs::create_dir_all(&dir).expect("heartbeats");
    fs::write(dir.join(format!("{worker}.json")), hb).expect("heartbeat");
}

fn write(path: &Path, text: &str, mtime: SystemTime) {
    let mut f = fs::File::create(path).expect("result");
    f.write_all(text.as_bytes()).expect("write");
    f.set_modified(mtime).expect("mtime");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(args.first().map(String::as_str).unwrap_or_else(|| {
        eprintln!("usage: listener-spool ROOT [WORKERS] [RESULTS] | ROOT --touch");
        std::process::exit(2)
    }));
    let workers: Vec<String> = if args.get(1).map(String::as_str) == Some("--touch") {
        let mut names: Vec<String> = fs::read_dir(root.join("results"))
            .expect("results")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        for w in &names {
            let id = format!(
                "touch-{}",
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
            );
            write(
                &root.join("results").join(w).join(format!("{id}.json")),
                &result(w, &id, 0, SystemTime::now()),
                SystemTime::now(),
            );
        }
        println!("one new result in each of {} folders", names.len());
        return;
    } else {
        let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
        (0..n).map(|i| format!("w{i:03}")).collect()
    };
    let per: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let start = SystemTime::now() - Duration::from_secs(2 * 86400);
    let step = Duration::from_secs(86400) / per.max(1) as u32;
    for w in &workers {
        let dir = root.join("results").join(w);
        fs::create_dir_all(&dir).expect("results folder");
        fs::create_dir_all(root.join("tasks").join(w)).expect("queue");
        for i in 0..per {
            let id = format!("t{i:06}");
            let at = start + step * i as u32;
            write(&dir.join(format!("{id}.json")), &result(w, &id, i, at), at);
        }
        heartbeat(root, w);
    }
    println!("{} workers × {per} results in {}", workers.len(), root.display());
}
