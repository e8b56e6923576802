#!/usr/bin/env python3
"""orchestrator-listener on a large spool: 100 workers x 10,000 results (by default).

Standard library only. Measures, on the release binary:
  first start  no state file: the spool is counted (its results are a day or two old, so
               LISTENER_BACKFILL keeps them from being announced); time to READY, time until
               every folder is listed and every result taken, peak memory.
  restart      the state of the first start, nothing changed: time to READY (the rebuild:
               state read, one stat per result folder), memory; then scrapes of /metrics.
  restart after one new result in every folder: READY as soon as the state is read and
               the seals checked; then every folder is listed again (names and mtimes; old
               results are not read) and the 100 new results taken ("caught up").
Times to READY are taken two ways: the daemon's own REBUILD_MS (from its start to READY)
and the wall time from spawn to its `ready` log line (exec and config included).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time


def log_lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.startswith("{")]
    except (OSError, ValueError):
        return []


def wait_line(path, message, proc, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for line in log_lines(path):
            if line.get("message") == message:
                return line
        if proc.poll() is not None:
            sys.exit(f"listener exited with {proc.returncode}; see {path}")
        time.sleep(0.002)
    sys.exit(f"no '{message}' in {path} after {deadline_s} s")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Run:
    """One listener process on the spool."""

    def __init__(self, args, tag):
        self.sock = os.path.join(args.workdir, "listener.sock")
        self.log = os.path.join(args.workdir, f"listener-{tag}.log")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "WATCHER_ROOT": args.spool,
            "LOG_FORMAT": "json",
            "METRICS_LISTEN": self.sock,
            # The heartbeats were written once, when the spool was made.
            "HEARTBEAT_STALE_AFTER": "604800",
        }
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([args.bin], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        ready = wait_line(self.log, "ready", self.proc, 600)
        self.ready_wall_ms = (time.perf_counter() - self.started) * 1000
        self.rebuild_ms = int(ready.get("rebuild_ms", "0"))
        self.to_list = int(ready.get("folders_to_list", "0"))
        self.rss_ready_kb = status_kb(self.proc.pid, "VmRSS")

    def caught_up(self):
        line = wait_line(self.log, "caught up: every folder scanned, every result found at start-up taken",
                         self.proc, 3600)
        return int(line.get("duration_ms", "0"))

    def scrape(self):
        t = time.perf_counter()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        s.close()
        body = b"".join(chunks).split(b"\r\n\r\n", 1)[1]
        return (time.perf_counter() - t) * 1000, body

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        if code != 0:
            sys.exit(f"listener exited with {code}; see {self.log}")


def sealed_all(args):
    """Whether the saved state has sealed every result folder as it is now."""
    try:
        with open(os.path.join(args.spool, "listener", "state.json")) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return False
    workers = state.get("workers", {})
    results = os.path.join(args.spool, "results")
    return len(workers) >= args.workers and all(
        w["cursor"].get("sealed_ns") == os.stat(os.path.join(results, name)).st_mtime_ns
        for name, w in workers.items())


def make_spool(args):
    marker = os.path.join(args.spool, ".bench-complete")
    if os.path.exists(marker):
        return None
    t = time.perf_counter()
    subprocess.run([args.spool_bin, args.spool, str(args.workers), str(args.results)], check=True)
    open(marker, "w").close()
    return time.perf_counter() - t


def fresh_state(args):
    """No state, no events, and none of the results a previous run added (--touch)."""
    for d in ("listener", os.path.join("triggers", "orchestrator")):
        subprocess.run(["rm", "-rf", os.path.join(args.spool, d)], check=True)
    results = os.path.join(args.spool, "results")
    for w in os.listdir(results):
        for name in os.listdir(os.path.join(results, w)):
            if name.startswith("touch-"):
                os.unlink(os.path.join(results, w, name))


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True)
    p.add_argument("--spool-bin", required=True, help="the listener-spool example")
    p.add_argument("--workdir", default="/var/tmp/worker-watcher-bench/listener")
    p.add_argument("--workers", type=int, default=100)
    p.add_argument("--results", type=int, default=10_000)
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--scrapes", type=int, default=200)
    p.add_argument("--promtool", default="promtool")
    args = p.parse_args()
    args.spool = os.path.join(args.workdir, f"spool-{args.workers}x{args.results}")
    os.makedirs(args.workdir, exist_ok=True)
    out = {"workers": args.workers, "results_per_worker": args.results}

    made = make_spool(args)
    if made is not None:
        out["spool_made_s"] = round(made, 1)
    fresh_state(args)

    first = Run(args, "first")
    out["first_ready_wall_ms"] = round(first.ready_wall_ms)
    out["first_rebuild_ms"] = first.rebuild_ms
    out["first_folders_to_list"] = first.to_list
    out["first_caught_up_ms"] = first.caught_up()
    out["first_peak_rss_mb"] = round(status_kb(first.proc.pid, "VmHWM") / 1024, 1)
    end = time.monotonic() + 120
    while not sealed_all(args) and time.monotonic() < end:
        time.sleep(0.1)
    out["first_rss_after_mb"] = round(status_kb(first.proc.pid, "VmRSS") / 1024, 1)
    first.stop()
    out["events_after_first_start"] = len(os.listdir(os.path.join(args.spool, "triggers", "orchestrator")))
    out["state_bytes"] = os.path.getsize(os.path.join(args.spool, "listener", "state.json"))

    walls, rebuilds, rss, scrapes, sizes = [], [], [], [], []
    for i in range(args.restarts):
        r = Run(args, f"restart-{i}")
        walls.append(r.ready_wall_ms)
        rebuilds.append(r.rebuild_ms)
        rss.append(r.rss_ready_kb / 1024)
        if r.to_list:
            sys.exit(f"restart {i} found {r.to_list} folders to list; the state did not seal them")
        if i == 0:
            for _ in range(args.scrapes):
                ms, body = r.scrape()
                scrapes.append(ms)
                sizes.append(len(body))
            check = subprocess.run([args.promtool, "check", "metrics"], input=body, capture_output=True)
            out["promtool"] = "clean" if check.returncode == 0 and not (check.stdout + check.stderr).strip() \
                else (check.stdout + check.stderr).decode()[:500]
            out["scrape_lines"] = body.count(b"\n")
            out["rss_after_scrapes_mb"] = round(status_kb(r.proc.pid, "VmRSS") / 1024, 1)
        r.stop()
    out["restart_ready_wall_ms"] = {"median": round(median(walls)), "max": round(max(walls))}
    out["restart_rebuild_ms"] = {"median": median(rebuilds), "max": max(rebuilds)}
    out["restart_rss_mb"] = round(median(rss), 1)
    scrapes.sort()
    out["scrape_ms"] = {"median": round(median(scrapes), 2), "p99": round(scrapes[int(len(scrapes) * 0.99) - 1], 2),
                        "min": round(scrapes[0], 2)}
    out["scrape_bytes"] = sizes[-1] if sizes else 0

    touched_walls, touched_rebuilds, touched_caught = [], [], []
    for i in range(3):
        subprocess.run([args.spool_bin, args.spool, "--touch"], check=True, stdout=subprocess.DEVNULL)
        r = Run(args, f"touched-{i}")
        touched_walls.append(r.ready_wall_ms)
        touched_rebuilds.append(r.rebuild_ms)
        touched_caught.append(r.caught_up())
        end = time.monotonic() + 120
        while not sealed_all(args) and time.monotonic() < end:
            time.sleep(0.1)
        r.stop()
    out["touched_ready_wall_ms"] = {"median": round(median(touched_walls)), "max": round(max(touched_walls))}
    out["touched_rebuild_ms"] = {"median": median(touched_rebuilds), "max": max(touched_rebuilds)}
    out["touched_caught_up_ms"] = {"median": median(touched_caught), "max": max(touched_caught)}
    with open("/proc/loadavg") as f:
        out["loadavg"] = f.read().split()[:3]
    out["cpus"] = os.cpu_count()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
