#!/usr/bin/env python3
"""How worker-watcher's costs grow with the work (issue 18). Benchmarks, not tests: each
prints JSON, and each is bounded in time.

    scale.py cpu BIN [--cs 1,4,16,64] [--n 2000] [--dir D]
        Daemon CPU (all its threads, not its agents) per no-op task at each concurrency: one
        fresh worker per value, N tasks (at least 50 per slot) renamed into the queue at once.
    scale.py queued BIN [--sizes 100000,1000000] [--dir D]
        Spawn -> READY=1 and RSS (at READY, and peak) of a worker started on a queue of that
        many tasks, the agent one that never finishes (so the queue stays as it is). Each
        queue is made once under D and reused.
    scale.py share BIN [--n 2000] [--c 4] [--runs 3] [--dir D]
        The share of the spawn ceiling by CPU time, which outside load moves far less than
        wall time: CPU per task of `spawn_ceiling` (itself and its agents) over that of the
        worker (the daemon, every thread, and the agents it reaped), alternated RUNS times.
        On a machine whose CPUs are the bound (a no-op agent: they are), it is the share of
        the ceiling's throughput the worker reaches on the same machine when it is quiet.
    scale.py fleet BIN [--workers 100] [--seconds 60] [--dir D]
        That many idle workers on one spool (the default HEARTBEAT_INTERVAL): their total
        CPU and voluntary context switches (wake-ups) over SECONDS, their summed RSS and PSS.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "probe"))
import probe  # noqa: E402  (the Worker of bench/probe/probe.py)

BENCH = Path(__file__).resolve().parent.parent
HZ = os.sysconf("SC_CLK_TCK")


def hang_agent():
    path = BENCH / ".build" / "hang_agent"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(path), str(BENCH / "agents" / "hang_agent.c")],
                       check=True)
    return path


def status(pid, key):
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss(pid):
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def switches(pid):
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def cmd_cpu(a):
    out = []
    for c in [int(x) for x in a.cs.split(",")]:
        n = max(a.n, 50 * c)
        w = probe.Worker(a.bin, a.dir, c)
        try:
            w.stage(n)
            t0, s0 = w.cpu_and_switches()
            seconds = w.drop_and_wait(n)
            time.sleep(0.5)
            t1, s1 = w.cpu_and_switches()
            row = {"c": c, "n": n, "tasks_per_s": round(n / seconds),
                   "cpu_ms_per_task": round((t1 - t0) * 1000 / HZ / n, 3),
                   "voluntary_switches_per_task": round((s1 - s0) / n, 2),
                   "rss_kib_after": status(w.proc.pid, "VmRSS"), "hwm_kib": status(w.proc.pid, "VmHWM")}
        finally:
            w.stop()
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def children_ticks(pid):
    """utime+stime of the process and of its waited-for children (the agents it reaped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    f = stat[stat.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])


def ceiling_cpu_ms(n, c, workdir):
    """CPU per task of spawn_ceiling and its agents (getrusage of the children of a shell)."""
    tool = BENCH / ".build" / "spawn_ceiling"
    if not tool.exists():
        subprocess.run(["gcc", "-O2", "-o", str(tool), str(BENCH / "ceilings" / "spawn_ceiling.c")], check=True)
    before = os.times()
    out = subprocess.run([str(tool), str(n), str(c), str(probe.agent_path())], capture_output=True,
                         text=True, check=True, cwd=workdir)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return cpu * 1000 / n, json.loads(out.stdout)["per_s"]


def cmd_share(a):
    rows = []
    for run in range(a.runs):
        ceiling_ms, ceiling_per_s = ceiling_cpu_ms(a.n, a.c, a.dir)
        w = probe.Worker(a.bin, a.dir, a.c)
        try:
            w.stage(a.n)
            t0, d0 = children_ticks(w.proc.pid), cpu_ticks(w.proc.pid)
            seconds = w.drop_and_wait(a.n)
            time.sleep(0.5)
            t1, d1 = children_ticks(w.proc.pid), cpu_ticks(w.proc.pid)
        finally:
            w.stop()
        ww_ms = (t1 - t0) * 1000 / HZ / a.n
        row = {"run": run + 1, "ceiling_cpu_ms_per_task": round(ceiling_ms, 3),
               "ww_cpu_ms_per_task": round(ww_ms, 3),
               "ww_daemon_cpu_ms_per_task": round((d1 - d0) * 1000 / HZ / a.n, 3),
               "share_by_cpu": round(ceiling_ms / ww_ms, 3),
               "ceiling_per_s": round(ceiling_per_s), "ww_per_s": round(a.n / seconds),
               "share_by_wall": round(a.n / seconds / ceiling_per_s, 3)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    shares = sorted(r["share_by_cpu"] for r in rows)
    print(json.dumps({"median_share_by_cpu": shares[len(shares) // 2], "min": shares[0], "max": shares[-1]}))


def make_queue(base, n):
    """base/q-N/tasks/probe with N tasks, made once (a .done marker says it is whole)."""
    root = Path(base) / f"q-{n}"
    queue = root / "tasks" / "probe"
    if (root / ".done").exists():
        # Put back what the last run claimed, and drop what it wrote.
        inflight = queue / ".inflight"
        if inflight.is_dir():
            for f in os.listdir(inflight):
                if f.endswith(".json"):
                    os.rename(inflight / f, queue / f)
        for sub in ("results", "triggers", "heartbeats", "dlq"):
            shutil.rmtree(root / sub, ignore_errors=True)
        return root
    shutil.rmtree(root, ignore_errors=True)
    queue.mkdir(parents=True)
    started = time.monotonic()
    for i in range(n):
        fd = os.open(queue / f"t{i:07d}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.write(fd, b'{"task_id": "t%07d", "description": "scale"}' % i)
        os.close(fd)
    (root / ".done").write_text("")
    print(f"made {n} tasks in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return root


def cmd_queued(a):
    for n in [int(x) for x in a.sizes.split(",")]:
        root = make_queue(a.dir, n)
        sock_path = root / "notify.sock"
        if sock_path.exists():
            sock_path.unlink()
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(sock_path))
        env = {"PATH": "/usr/bin:/bin", "CLAUDE_COMMAND": str(hang_agent()), "CLAUDE_ARGS": "",
               "MAX_CONCURRENT_TASKS": "4", "LOG_LEVEL": "WARNING", "ENABLE_METRICS": "false",
               "NOTIFY_SOCKET": str(sock_path)}
        log = open(root / "worker.log", "wb")
        # Page cache warm for every run: the folder listed once before the clock starts.
        os.listdir(root / "tasks" / "probe")
        started = time.monotonic()
        proc = subprocess.Popen([str(a.bin), "probe", "--root", str(root)], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        ready = None
        notify.settimeout(0.5)
        deadline = started + a.timeout
        try:
            while ready is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    if b"READY=1" in notify.recv(4096):
                        ready = time.monotonic() - started
                except socket.timeout:
                    pass
            row = {"queued": n, "ready_s": round(ready, 3) if ready else None,
                   "rss_kib_at_ready": status(proc.pid, "VmRSS"), "cpu_s_to_ready": cpu_ticks(proc.pid) / HZ}
            time.sleep(2)
            row.update({"rss_kib_2s_later": status(proc.pid, "VmRSS"), "hwm_kib": status(proc.pid, "VmHWM")})
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            notify.close()
            log.close()
        print(json.dumps(row), flush=True)


def cmd_fleet(a):
    root = Path(tempfile.mkdtemp(prefix="fleet-", dir=a.dir))
    procs = []
    env = {"PATH": "/usr/bin:/bin", "CLAUDE_COMMAND": str(hang_agent()), "CLAUDE_ARGS": "",
           "LOG_LEVEL": "WARNING", "ENABLE_METRICS": "false"}
    try:
        log = open(root / "fleet.log", "wb")
        for i in range(a.workers):
            procs.append(subprocess.Popen([str(a.bin), f"w{i:04d}", "--root", str(root)], env=env,
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log))
        beats = root / "heartbeats"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if beats.is_dir() and len([f for f in os.listdir(beats) if f.endswith(".json")]) >= a.workers:
                break
            time.sleep(0.2)
        time.sleep(a.settle)  # every worker past its start-up (100 starting share 2 CPUs)
        alive = [p for p in procs if p.poll() is None]
        t0 = sum(cpu_ticks(p.pid) for p in alive)
        s0 = sum(switches(p.pid) for p in alive)
        time.sleep(a.seconds)
        t1 = sum(cpu_ticks(p.pid) for p in alive)
        s1 = sum(switches(p.pid) for p in alive)
        rss = sum(status(p.pid, "VmRSS") for p in alive)
        total_pss = sum(pss(p.pid) for p in alive)
        row = {"workers": a.workers, "alive": len(alive), "seconds": a.seconds,
               "cpu_s_total": (t1 - t0) / HZ, "cpu_share_of_one_core": round((t1 - t0) / HZ / a.seconds, 5),
               "wakeups_per_min_total": round((s1 - s0) * 60 / a.seconds),
               "wakeups_per_min_per_worker": round((s1 - s0) * 60 / a.seconds / max(len(alive), 1), 1),
               "rss_mib_total": round(rss / 1024, 1), "pss_mib_total": round(total_pss / 1024, 1),
               "rss_kib_per_worker": round(rss / max(len(alive), 1))}
        print(json.dumps(row), flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cpu")
    c.add_argument("bin")
    c.add_argument("--cs", default="1,4,16,64")
    c.add_argument("--n", type=int, default=2000)
    c.add_argument("--dir", default="/var/tmp/ww-scale")
    q = sub.add_parser("queued")
    q.add_argument("bin")
    q.add_argument("--sizes", default="100000,1000000")
    q.add_argument("--dir", default="/var/tmp/ww-scale")
    q.add_argument("--timeout", type=int, default=300, help="most seconds to wait for READY")
    s = sub.add_parser("share")
    s.add_argument("bin")
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--c", type=int, default=4)
    s.add_argument("--runs", type=int, default=3)
    s.add_argument("--dir", default="/var/tmp/ww-scale")
    f = sub.add_parser("fleet")
    f.add_argument("bin")
    f.add_argument("--workers", type=int, default=100)
    f.add_argument("--seconds", type=int, default=60)
    f.add_argument("--settle", type=int, default=30, help="seconds left to the workers to start")
    f.add_argument("--dir", default="/var/tmp/ww-scale")
    a = p.parse_args()
    Path(a.dir).mkdir(parents=True, exist_ok=True)
    {"cpu": cmd_cpu, "share": cmd_share, "queued": cmd_queued, "fleet": cmd_fleet}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
