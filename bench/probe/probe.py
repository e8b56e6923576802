#!/usr/bin/env python3
"""Deterministic measures of one worker-watcher binary, for work on a shared machine.

    probe.py tasks BIN [--n 500] [--c 4] [--dir D] [--strace]   syscalls and CPU per task
    probe.py idle BIN [--seconds 60] [--dir D] [--watchdog-usec U]   wake-ups of an idle worker

`tasks`: one worker in a fresh root under D (default /var/tmp/ww-probe), the no-op agent
(bench/.build/noop_agent), N tasks written to a staging folder and renamed into the queue at
once; done when N results exist. Prints the daemon's CPU (utime+stime of all its threads, not
its agents) per task and its voluntary context switches per task. With --strace it runs the
same under `strace -f -ff` attached after READY=1 and prints the syscalls of the daemon's own
threads (every traced process that did not execve, i.e. not an agent) per task, and the
metadata operations among them (the calls that change a folder or force a sync).
Batches grow with the disk's latency, and strace slows the daemon, so counts of the
per-batch calls (folder syncs, thread starts) are upper bounds of what an untraced run does.

`idle`: one worker started with a NOTIFY_SOCKET (and WATCHDOG_USEC when given, as systemd
sets it for WatchdogSec=), the default HEARTBEAT_INTERVAL, left 5 s to settle, then SECONDS
under `strace -f -c` attached to all its threads and, separately, its voluntary context
switches (one per wake-up of a thread that blocked) from /proc/PID/task/*/status.
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
METADATA = {"rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "mkdir",
            "mkdirat", "fsync", "fdatasync", "sync_file_range", "syncfs"}
CREATE = re.compile(r"^(open|openat)\(.*O_CREAT")


def agent_path():
    path = BENCH / ".build" / "noop_agent"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-static", "-o", str(path), str(BENCH / "agents" / "noop_agent.c")],
                       check=True)
    return path


class Worker:
    """A worker-watcher in a fresh root with a NOTIFY_SOCKET kept bound and drained."""

    def __init__(self, binary, base, concurrency=4, extra_env=None):
        Path(base).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="probe-", dir=base))
        self.queue = self.root / "tasks" / "probe"
        self.results = self.root / "results" / "probe"
        self.staging = self.root / "staging"
        for d in (self.queue, self.results, self.staging):
            d.mkdir(parents=True, exist_ok=True)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.root / "notify.sock"))
        self.notify.settimeout(0.2)
        env = {"PATH": "/usr/bin:/bin", "CLAUDE_COMMAND": str(agent_path()), "CLAUDE_ARGS": "",
               "MAX_CONCURRENT_TASKS": str(concurrency), "TASK_TIMEOUT": "3600",
               "LOG_LEVEL": "WARNING", "ENABLE_METRICS": "false",
               "NOTIFY_SOCKET": str(self.root / "notify.sock"), **(extra_env or {})}
        self.log = open(self.root / "worker.log", "wb")
        argv = [str(binary), "probe", "--root", str(self.root)]
        if "WATCHDOG_USEC" in env:
            # As systemd does: WATCHDOG_PID names the daemon, which checks it.
            argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$@"', "sh", *argv]
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        self.datagrams = []
        deadline = time.monotonic() + 15
        while not any("READY=1" in d for d in self.datagrams):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"no READY=1: {(self.root / 'worker.log').read_text()[-2000:]}")
            self._recv()
        self.stop_drain = threading.Event()
        self.drainer = threading.Thread(target=self._drain, daemon=True)
        self.drainer.start()

    def _recv(self):
        try:
            self.datagrams.append(self.notify.recv(4096).decode(errors="replace"))
        except socket.timeout:
            pass

    def _drain(self):
        while not self.stop_drain.is_set():
            try:
                self._recv()
            except OSError:
                return

    def cpu_and_switches(self):
        """utime+stime ticks of every thread, and their voluntary switches."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])
        switches = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches"):
                        switches += int(line.split()[1])
            except FileNotFoundError:
                pass
        return ticks, switches

    def stage(self, n):
        body = lambda i: json.dumps({"task_id": f"t{i:06d}", "description": "probe no-op"}).encode()
        for i in range(1, n + 1):
            (self.staging / f"t{i:06d}.json").write_bytes(body(i))

    def drop_and_wait(self, n, timeout=600):
        started = time.monotonic()
        for i in range(1, n + 1):
            os.rename(self.staging / f"t{i:06d}.json", self.queue / f"t{i:06d}.json")
        while time.monotonic() - started < timeout:
            if len(os.listdir(self.results)) >= n:
                return time.monotonic() - started
            time.sleep(0.01)
        raise SystemExit(f"only {len(os.listdir(self.results))} of {n} results in {timeout}s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stop_drain.set()
        self.notify.close()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def strace_attach(pid, args):
    proc = subprocess.Popen(["strace", "-f", "-qq", *args, "-p", str(pid)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # strace attaches to every thread before it prints anything
    return proc


def parse_ff(prefix):
    """Per traced process: its syscall names and whether it exec'd (an agent)."""
    daemon, agents, creates, threads = collections.Counter(), 0, 0, 0
    for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        calls = collections.Counter()
        made = 0
        execed = False
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"^(?:<\.\.\. )?([a-z0-9_]+)\(", line)
            if not m or "resumed>" in line[:40]:
                continue
            name = m.group(1)
            if name == "execve":
                execed = True
            calls[name] += 1
            made += bool(CREATE.match(line))
        if execed:
            agents += 1
        else:
            daemon.update(calls)
            creates += made
            threads += 1
    return daemon, agents, creates, threads


def cmd_tasks(a):
    w = Worker(a.bin, a.dir, a.c)
    try:
        w.stage(a.n)
        trace_dir = None
        if a.strace:
            trace_dir = Path(tempfile.mkdtemp(prefix="strace-", dir="/var/tmp"))
            tracer = strace_attach(w.proc.pid, ["-ff", "-o", str(trace_dir / "t")])
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g",
                                     "-o", a.perf, "-p", str(w.proc.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        ticks0, sw0 = w.cpu_and_switches()
        seconds = w.drop_and_wait(a.n)
        time.sleep(0.5)  # the last batch's outcomes collected, the idle heartbeat written
        ticks1, sw1 = w.cpu_and_switches()
        hz = os.sysconf("SC_CLK_TCK")
        out = {"n": a.n, "c": a.c, "seconds": round(seconds, 3), "tasks_per_s": round(a.n / seconds),
               "cpu_ms_per_task": round((ticks1 - ticks0) * 1000 / hz / a.n, 3),
               "voluntary_switches_per_task": round((sw1 - sw0) / a.n, 2)}
        if a.perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        if a.strace:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(30)
            daemon, agents, creates, threads = parse_ff(trace_dir / "t")
            if a.keep_trace:
                print(f"trace kept in {trace_dir}", file=sys.stderr)
            else:
                shutil.rmtree(trace_dir, ignore_errors=True)
            total = sum(daemon.values())
            out.update({"agents_traced": agents, "daemon_threads_traced": threads,
                        "syscalls_per_task": round(total / a.n, 2),
                        "creates_per_task": round(creates / a.n, 3),
                        "metadata_per_task": {k: round(v / a.n, 3) for k, v in sorted(daemon.items())
                                              if k in METADATA},
                        "by_call_per_task": {k: round(v / a.n, 3) for k, v in daemon.most_common()}})
        print(json.dumps(out, indent=1))
    finally:
        w.stop()


def cmd_idle(a):
    env = {"WATCHDOG_USEC": str(a.watchdog_usec)} if a.watchdog_usec else {}
    w = Worker(a.bin, a.dir, 3, env)
    try:
        time.sleep(5)
        # First window untraced (ptrace stops would add switches of their own), then traced.
        ticks0, sw0 = w.cpu_and_switches()
        n0 = len(w.datagrams)
        time.sleep(a.seconds)
        ticks1, sw1 = w.cpu_and_switches()
        n1 = len(w.datagrams)
        kinds = collections.Counter()
        for d in w.datagrams[n0:n1]:
            for line in d.splitlines():
                kinds[line.split("=", 1)[0]] += 1
        per_thread = {}
        for task in Path(f"/proc/{w.proc.pid}/task").iterdir():
            per_thread[(task / "comm").read_text().strip()] = [
                int(l.split()[1]) for l in (task / "status").read_text().splitlines()
                if l.startswith("voluntary_ctxt_switches")][0]
        tracer = strace_attach(w.proc.pid, ["-c", "-U", "name,calls,errors"])
        time.sleep(a.seconds)
        tracer.send_signal(signal.SIGINT)
        _, err = tracer.communicate(timeout=30)
        print(json.dumps({"seconds": a.seconds, "cpu_ticks": ticks1 - ticks0,
                          "voluntary_switches": sw1 - sw0,
                          "switches_since_start_by_thread": per_thread,
                          "notify_datagrams": dict(kinds)}, indent=1))
        print(f"strace -f -c over the next {a.seconds} s:")
        print(err.decode(errors="replace"))
    finally:
        w.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tasks")
    t.add_argument("bin")
    t.add_argument("--n", type=int, default=500)
    t.add_argument("--c", type=int, default=4)
    t.add_argument("--dir", default="/var/tmp/ww-probe")
    t.add_argument("--strace", action="store_true")
    t.add_argument("--keep-trace", action="store_true", help="keep strace's files")
    t.add_argument("--perf", metavar="FILE", help="perf record -g (cpu-clock) of the daemon into FILE")
    i = sub.add_parser("idle")
    i.add_argument("bin")
    i.add_argument("--seconds", type=int, default=60)
    i.add_argument("--dir", default="/var/tmp/ww-probe")
    i.add_argument("--watchdog-usec", type=int, default=0)
    a = p.parse_args()
    {"tasks": cmd_tasks, "idle": cmd_idle}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
