#!/usr/bin/env python3
"""What metrics cost a worker: the time of a scrape after 10,000 processed tasks, and the
no-op throughput with ENABLE_METRICS on and off (interleaved runs, medians).

Standard library only. Each run gets a fresh spool under --workdir with N tasks queued
before the worker starts; the time is from its start to the last result file. The agent is
/bin/true (no output, exit 0), so what is measured is the daemon's own work per task: claim,
spawn, reap, durable result. A scrape is timed on the client: connect, GET /metrics over
the unix socket, read to the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

WORKER = "bench"


def spool(workdir, tag):
    root = os.path.join(workdir, tag)
    shutil.rmtree(root, ignore_errors=True)
    queue = os.path.join(root, "tasks", WORKER)
    os.makedirs(queue)
    return root, queue


def fill(queue, n):
    for i in range(n):
        with open(os.path.join(queue, f"t{i}.json"), "w") as f:
            json.dump({"task_id": f"t{i}", "description": "noop"}, f)


def start(binary, root, metrics, concurrency):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "WATCHER_ROOT": root,
        "CLAUDE_COMMAND": "/bin/true",
        "CLAUDE_ARGS": "",
        "MAX_CONCURRENT_TASKS": str(concurrency),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "text",
        "ENABLE_METRICS": "true" if metrics else "false",
        "METRICS_LISTEN": os.path.join(root, "metrics.sock"),
    }
    log = open(os.path.join(root, "worker.log"), "w")
    return subprocess.Popen([binary, WORKER], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)


def wait_results(root, n, proc, deadline_s=600):
    results = os.path.join(root, "results", WORKER)
    last = os.path.join(results, f"t{n - 1}.json")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"worker exited early; see {root}/worker.log")
        if os.path.exists(last) and sum(1 for _ in os.scandir(results)) >= n:
            return
        time.sleep(0.005)
    sys.exit(f"timed out waiting for {n} results in {results}")


def cpu_seconds(pid):
    """User + system CPU of the daemon itself (its agents are not counted)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scraper(path, every, stop_event, count):
    """Scrapes every `every` seconds, as Prometheus would, until told to stop."""
    while not stop_event.wait(every):
        try:
            scrape_once(path)
            count[0] += 1
        except OSError:
            pass


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def throughput(binary, workdir, metrics, n, concurrency, scrape_every):
    """Tasks per second and daemon CPU per task (microseconds) of one run."""
    root, queue = spool(workdir, "on" if metrics else "off")
    fill(queue, n)
    t0 = time.monotonic()
    proc = start(binary, root, metrics, concurrency)
    done, scrapes = threading.Event(), [0]
    if metrics and scrape_every > 0:
        sock = os.path.join(root, "metrics.sock")
        threading.Thread(target=scraper, args=(sock, scrape_every, done, scrapes), daemon=True).start()
    wait_results(root, n, proc)
    elapsed = time.monotonic() - t0
    done.set()
    return n / elapsed, 1e6 * cpu_seconds(proc.pid) / n, root, proc


def scrape_once(path):
    t0 = time.perf_counter_ns()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            break
        chunks.append(b)
    s.close()
    dt = time.perf_counter_ns() - t0
    body = b"".join(chunks)
    if not body.startswith(b"HTTP/1.1 200"):
        sys.exit(f"scrape failed: {body[:200]!r}")
    return dt / 1e6, body


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="worker-watcher binary (a release build)")
    ap.add_argument("--workdir", default="/dev/shm/ww-bench-metrics")
    ap.add_argument("--tasks", type=int, default=10000, help="tasks per throughput run")
    ap.add_argument("--reps", type=int, default=5, help="runs with metrics on, and as many off")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--scrapes", type=int, default=1000)
    ap.add_argument("--scrape-interval", type=float, default=1.0,
                    help="seconds between scrapes during the runs with metrics on (0: none)")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)

    rates = {True: [], False: []}
    cpus = {True: [], False: []}
    scrape_root = None
    for rep in range(a.reps):
        for metrics in (False, True) if rep % 2 == 0 else (True, False):
            rate, cpu, root, proc = throughput(a.bin, a.workdir, metrics, a.tasks, a.concurrency,
                                               a.scrape_interval)
            rates[metrics].append(rate)
            cpus[metrics].append(cpu)
            print(f"run {rep + 1} metrics={'on ' if metrics else 'off'}: {rate:8.1f} tasks/s, "
                  f"daemon CPU {cpu:6.1f} us/task", flush=True)
            if metrics and rep == a.reps - 1:
                scrape_root = (root, proc)
            else:
                stop(proc)

    root, proc = scrape_root
    sock = os.path.join(root, "metrics.sock")
    times, body = [], b""
    for _ in range(a.scrapes):
        dt, body = scrape_once(sock)
        times.append(dt)
    stop(proc)
    processed = [l for l in body.decode().splitlines()
                 if l.startswith("watcher_tasks_processed_total{status=\"completed\"")]
    times.sort()
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print()
    print(f"| measure | value |")
    print(f"| --- | --- |")
    print(f"| tasks per run, concurrency | {a.tasks}, {a.concurrency} (agent /bin/true, spool on {a.workdir}) |")
    print(f"| throughput, metrics off (median of {a.reps}) | {off:.1f} tasks/s (runs: {', '.join(f'{r:.0f}' for r in rates[False])}) |")
    print(f"| throughput, metrics on (median of {a.reps}) | {on:.1f} tasks/s (runs: {', '.join(f'{r:.0f}' for r in rates[True])}) |")
    print(f"| cost of metrics | {100 * (off - on) / off:+.2f} % of the no-op throughput |")
    con, coff = statistics.median(cpus[True]), statistics.median(cpus[False])
    print(f"| daemon CPU per task, off / on (medians) | {coff:.1f} / {con:.1f} us "
          f"({100 * (con - coff) / coff:+.2f} %; scraped every {a.scrape_interval} s when on) |")
    print(f"| scrape at {processed[0].split()[-1] if processed else '?'} processed, {len(body)} bytes | "
          f"median {statistics.median(times):.3f} ms, p99 {times[int(0.99 * (len(times) - 1))]:.3f} ms, "
          f"min {times[0]:.3f} ms, max {times[-1]:.3f} ms ({a.scrapes} scrapes) |")


if __name__ == "__main__":
    main()
