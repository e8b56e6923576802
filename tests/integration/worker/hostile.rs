//! Hostile and careless clients of the metrics endpoint: the worker keeps running tasks and
//! answering scrapes, and holds a bounded number of connections.

use std::io::Write;
use std::thread;

use crate::support::scrape::*;
use crate::support::util::*;
use crate::worker::metrics::start;

/// Descriptors the worker has open.
fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn idle_connections_huge_heads_and_noise_do_not_stop_the_worker() {
    let root = Root::new();
    let (w, target) = start(&root, &[("MAX_CONCURRENT_TASKS", "4")]);
    // 200 connections that never send anything.
    let idle: Vec<_> = (0..200).map(|_| target.connect()).collect();
    // A 1 MiB request head, sent by a thread: the worker reads at most 8 KiB of it.
    let big = {
        let t = target.clone();
        thread::spawn(move || {
            let mut c = t.connect();
            let mut head = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
            head.resize(1 << 20, b'a');
            // The worker answers 431 and closes early: a failed write is expected.
            let _ = c.write_all(&head);
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut c, &mut bytes);
            parse_answer(&bytes).status
        })
    };
    // Random bytes on a few more.
    for seed in 1..=5u64 {
        let mut c = target.connect();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = c.write_all(&noise);
    }
    // Meanwhile tasks run and scrapes are answered.
    for i in 0..20 {
        root.submit("marie", &format!("t{i}"), "hello");
    }
    for i in 0..20 {
        assert_eq!(root.wait_result("marie", &format!("t{i}"))["status"], "completed");
    }
    let s = target.scrape_when("20 tasks counted", |s| {
        s.get("watcher_tasks_processed_total{status=\"completed\",worker=\"marie\"}") >= 20.0
    });
    assert_eq!(s.get("watcher_tasks_processed_total{status=\"completed\",worker=\"marie\"}"), 20.0);
    assert_eq!(target.get("/healthz").status, 200);
    // The idle connections were not all kept: the worker holds at most 64 of them, and made
    // room for the newer ones by closing the oldest.
    assert!(open_fds(w.pid()) < 100, "the worker holds {} descriptors", open_fds(w.pid()));
    let s = target.scrape();
    assert!(s.get("watcher_http_connections_total{event=\"evicted\",worker=\"marie\"}") >= 136.0);
    assert!(s.get("watcher_http_connections_total{event=\"rejected\",worker=\"marie\"}") >= 5.0);
    let status = big.join().expect("big-head client");
    assert!(status == 431 || status == 0, "a 1 MiB head gets 431 (or a reset), got {status}");
    drop(idle);
    assert_eq!(target.get("/healthz").status, 200);
}
