use std::time::Duration;

use super::process::{max_open_files, parse_stat, Sys};
use super::*;

fn text(m: &WorkerMetrics) -> String {
    String::from_utf8(m.encode().expect("encode")).expect("utf-8")
}

fn failed(reason: &str) -> End {
    End::Failed { reason: Reason::parse(reason).expect("a reason") }
}

#[test]
fn every_family_is_there_from_the_start() {
    let m = WorkerMetrics::new("marie").unwrap();
    let t = text(&m);
    for line in [
        "watcher_tasks_processed_total{status=\"completed\",worker=\"marie\"} 0",
        "watcher_tasks_failed_total{reason=\"timeout\",worker=\"marie\"} 0",
        "watcher_task_duration_seconds_count{worker=\"marie\"} 0",
        "watcher_task_queue_size{worker=\"marie\"} 0",
        "watcher_active_tasks{worker=\"marie\"} 0",
        "watcher_circuit_breaker_state{worker=\"marie\"} 0",
        "watcher_build_info{version=\"",
        "process_cpu_seconds_total{worker=\"marie\"}",
        "process_resident_memory_bytes{worker=\"marie\"}",
    ] {
        assert!(t.contains(line), "missing {line} in:\n{t}");
    }
    // One HELP and one TYPE per family.
    let helps = t.lines().filter(|l| l.starts_with("# HELP watcher_tasks_processed_total ")).count();
    assert_eq!(helps, 1);
}

#[test]
fn outcomes_move_the_counters() {
    let m = WorkerMetrics::new("anga").unwrap();
    let run = |secs: u64, cost: Option<f64>| {
        Some(Run {
            duration: Duration::from_secs(secs),
            report: cost.map(|c| crate::agent::AgentReport {
                total_cost_usd: Some(c),
                input_tokens: 10,
                output_tokens: 7,
                ..Default::default()
            }),
            session: Some(if secs == 1 { "resumed" } else { "new" }),
        })
    };
    m.record(&Recorded { end: End::Completed, run: run(2, Some(0.25)) });
    m.record(&Recorded { end: End::Completed, run: run(2000, Some(0.5)) });
    m.record(&Recorded { end: End::Retried { reason: Reason::ExitCode }, run: run(1, None) });
    m.record(&Recorded { end: failed("exit_code"), run: run(1, None) });
    m.record(&Recorded { end: failed("invalid"), run: None });
    m.claimed(Duration::from_millis(3));
    let t = text(&m);
    for line in [
        "watcher_tasks_processed_total{status=\"completed\",worker=\"anga\"} 2",
        "watcher_tasks_processed_total{status=\"failed\",worker=\"anga\"} 2",
        "watcher_tasks_failed_total{reason=\"exit_code\",worker=\"anga\"} 1",
        "watcher_tasks_failed_total{reason=\"invalid\",worker=\"anga\"} 1",
        "watcher_dead_letters_total{reason=\"invalid\",worker=\"anga\"} 1",
        "watcher_task_retries_total{reason=\"exit_code\",worker=\"anga\"} 1",
        "watcher_task_duration_seconds_count{worker=\"anga\"} 4",
        "watcher_task_duration_seconds_bucket{worker=\"anga\",le=\"1\"} 2",
        "watcher_task_duration_seconds_bucket{worker=\"anga\",le=\"1800\"} 3",
        "watcher_task_duration_seconds_bucket{worker=\"anga\",le=\"+Inf\"} 4",
        "watcher_agent_cost_usd_total{worker=\"anga\"} 0.75",
        "watcher_agent_tokens_total{kind=\"input\",worker=\"anga\"} 20",
        "watcher_task_detection_latency_seconds_bucket{worker=\"anga\",le=\"0.005\"} 1",
        "watcher_agent_session_runs_total{session=\"new\",worker=\"anga\"} 2",
        "watcher_agent_session_runs_total{session=\"resumed\",worker=\"anga\"} 2",
        "watcher_agent_session_runs_total{session=\"missing\",worker=\"anga\"} 0",
        "watcher_tasks_processed_total{status=\"cancelled\",worker=\"anga\"} 0",
    ] {
        assert!(t.contains(line), "missing {line} in:\n{t}");
    }
}

#[test]
fn gauges_follow_the_state() {
    let m = WorkerMetrics::new("m").unwrap();
    m.set_state(&State {
        queue_size: 7,
        active: 2,
        breaker: 1,
        healthy: false,
        oldest_queued_age: 1.5,
        ..State::default()
    });
    let t = text(&m);
    assert!(t.contains("watcher_task_queue_size{worker=\"m\"} 7"));
    assert!(t.contains("watcher_circuit_breaker_state{worker=\"m\"} 1"));
    assert!(t.contains("watcher_healthy{worker=\"m\"} 0"));
    assert!(t.contains("watcher_oldest_queued_task_age_seconds{worker=\"m\"} 1.5"));
}

#[test]
fn registries_are_independent() {
    let a = WorkerMetrics::new("a").unwrap();
    let b = WorkerMetrics::new("a").unwrap();
    a.record(&Recorded { end: End::Completed, run: None });
    assert!(text(&b).contains("watcher_tasks_processed_total{status=\"completed\",worker=\"a\"} 0"));
}

#[test]
fn proc_stat_with_an_awkward_name() {
    let sys = Sys { ticks_per_second: 100.0, page_bytes: 4096.0, boot_time: 1000.0 };
    let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1 0 500 1048576 10 18446744073709551615";
    let s = parse_stat(line, &sys).expect("parsed");
    assert_eq!(s.cpu_seconds, 3.0);
    assert_eq!(s.children_cpu_seconds, 0.5);
    assert_eq!(s.start_time_seconds, 1005.0);
    assert_eq!(s.virtual_bytes, 1048576.0);
    assert_eq!(s.resident_bytes, 40960.0);
    assert_eq!(parse_stat("42 (x) S 1", &sys), None);
    assert_eq!(parse_stat("garbage", &sys), None);
}

#[test]
fn proc_limits_max_open_files() {
    let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                Max cpu time              unlimited            unlimited            seconds   \n\
                Max open files            1024                 524288               files     \n";
    assert_eq!(max_open_files(text), Some(1024.0));
    assert_eq!(max_open_files("Max cpu time unlimited"), None);
}
