//! The daemon's own process figures, read from /proc/self at scrape time: the standard
//! `process_*` names of Prometheus clients (with the `worker` label), plus the CPU time of
//! the agents it has reaped.

use std::fs;

use prometheus::{Counter, Gauge, Opts, Registry};

/// Figures of /proc/self/stat, in the units of the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    pub cpu_seconds: f64,
    pub children_cpu_seconds: f64,
    pub start_time_seconds: f64,
    pub virtual_bytes: f64,
    pub resident_bytes: f64,
}

pub struct ProcessMetrics {
    cpu: Counter,
    /// The agents' CPU time (the worker's); `None` for a daemon that runs no agents.
    children_cpu: Option<Counter>,
    start_time: Gauge,
    virtual_bytes: Gauge,
    resident_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
}

impl ProcessMetrics {
    /// A worker's figures, labelled `worker`, with its agents' CPU time.
    pub fn register(r: &Registry, worker: &str) -> prometheus::Result<ProcessMetrics> {
        ProcessMetrics::build(r, Some(worker))
    }

    /// The standard figures without labels, for a daemon of no one worker (the listener).
    pub fn register_unlabelled(r: &Registry) -> prometheus::Result<ProcessMetrics> {
        ProcessMetrics::build(r, None)
    }

    fn build(r: &Registry, worker: Option<&str>) -> prometheus::Result<ProcessMetrics> {
        let opts = |name: &str, help: &str| {
            let o = Opts::new(name, help);
            match worker {
                Some(w) => o.const_label("worker", w),
                None => o,
            }
        };
        let counter = |name, help| -> prometheus::Result<Counter> {
            let c = Counter::with_opts(opts(name, help))?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name, help| -> prometheus::Result<Gauge> {
            let g = Gauge::with_opts(opts(name, help))?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let children_cpu = match worker {
            Some(_) => Some(counter(
                "watcher_agent_cpu_seconds_total",
                "User and system CPU time of the agents the daemon has reaped (and their reaped children).",
            )?),
            None => None,
        };
        Ok(ProcessMetrics {
            cpu: counter("process_cpu_seconds_total", "User and system CPU time of the daemon, in seconds.")?,
            children_cpu,
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the daemon since the epoch, in seconds.",
            )?,
            virtual_bytes: gauge("process_virtual_memory_bytes", "Virtual memory size, in bytes.")?,
            resident_bytes: gauge("process_resident_memory_bytes", "Resident memory size, in bytes.")?,
            open_fds: gauge("process_open_fds", "Open file descriptors.")?,
            max_fds: gauge("process_max_fds", "Limit of open file descriptors (RLIMIT_NOFILE).")?,
        })
    }

    /// Reads /proc/self now. What cannot be read keeps its last value.
    pub fn refresh(&self) {
        if let Some(s) = fs::read_to_string("/proc/self/stat").ok().and_then(|t| parse_stat(&t, &sys())) {
            raise(&self.cpu, s.cpu_seconds);
            if let Some(c) = &self.children_cpu {
                raise(c, s.children_cpu_seconds);
            }
            self.start_time.set(s.start_time_seconds);
            self.virtual_bytes.set(s.virtual_bytes);
            self.resident_bytes.set(s.resident_bytes);
        }
        if let Ok(dir) = fs::read_dir("/proc/self/fd") {
            // Less the descriptor of the listing itself.
            self.open_fds.set(dir.count().saturating_sub(1) as f64);
        }
        // From /proc rather than getrlimit(2): glibc's getrlimit is prlimit64, which the
        // units' system call filter (~@resources) refuses.
        if let Some(max) = fs::read_to_string("/proc/self/limits").ok().and_then(|t| max_open_files(&t)) {
            self.max_fds.set(max);
        }
    }
}

/// A counter moved up to `total` (a monotonic figure read from the kernel).
fn raise(c: &Counter, total: f64) {
    let delta = total - c.get();
    if delta > 0.0 {
        c.inc_by(delta);
    }
}

/// What /proc/self/stat needs to become units.
#[derive(Clone, Copy, Debug)]
pub struct Sys {
    pub ticks_per_second: f64,
    pub page_bytes: f64,
    pub boot_time: f64,
}

fn sys() -> Sys {
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let boot_time = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0.0);
    Sys {
        ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        page_bytes: page.max(1) as f64,
        boot_time,
    }
}

/// Parses /proc/PID/stat (proc(5)). The command name may hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str, sys: &Sys) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); field n is at index n - 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let ticks = sys.ticks_per_second;
    Some(Stat {
        cpu_seconds: (num(14)? + num(15)?) / ticks,
        children_cpu_seconds: (num(16)? + num(17)?) / ticks,
        start_time_seconds: sys.boot_time + num(22)? / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * sys.page_bytes,
    })
}

/// The soft limit of "Max open files" in /proc/PID/limits.
pub fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}
