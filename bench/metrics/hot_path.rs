//! `cargo run --release --example metrics-hot-path`: what the metrics add to each task on the
//! loop's hot path (one claim and one durable outcome with an agent report), and the
//! server-side cost of encoding a scrape after 10,000 processed tasks, without the socket.

use std::hint::black_box;
use std::time::{Duration, Instant};

use worker_watcher::agent::AgentReport;
use worker_watcher::metrics::{End, Recorded, Run, State, WorkerMetrics};

fn main() {
    let m = WorkerMetrics::new("bench").expect("metrics");
    let outcome = Recorded {
        end: End::Completed,
        run: Some(Run {
            duration: Duration::from_millis(1500),
            report: Some(AgentReport {
                total_cost_usd: Some(0.0012),
                input_tokens: 10,
                output_tokens: 7,
                ..AgentReport::default()
            }),
            session: Some("new"),
        }),
    };
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        m.claimed(black_box(Duration::from_micros(800)));
        m.record(black_box(&outcome));
    }
    let per_task = t.elapsed().as_nanos() as f64 / n as f64;
    println!("per task (claim + completed outcome with a report): {per_task:.0} ns");

    let m = WorkerMetrics::new("bench").expect("metrics");
    for _ in 0..10_000 {
        m.claimed(Duration::from_micros(800));
        m.record(&outcome);
    }
    let state = State { max_concurrent: 3, healthy: true, ..State::default() };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..1000 {
        let t = Instant::now();
        m.set_state(&state);
        bytes = black_box(m.encode().expect("encode")).len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "encode at 10,000 processed ({bytes} bytes, /proc/self read included): median {:?}, p99 {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
}
