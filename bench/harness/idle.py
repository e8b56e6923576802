"""Idle cost: every subject started at once, each in its own workspace, then left
alone; CPU ticks, context switches and memory read from /proc in windows.

Two counts of wake-ups. Voluntary context switches, summed over all threads:
every time a thread blocks and is woken again, including waits for the disk (an
fsync is a sleep too). And, where perf can read the syscall tracepoints, the
waits the process entered (epoll_wait, poll, select, futex, nanosleep, read,
wait4, ...): each one returned is one wake-up of the program's own making. perf
counts in the kernel without stopping the process, so both run in one window.
"""

import contextlib
import os
import shutil
import subprocess
import time

from . import procfs, stats
from .config import Agent
from .session import running

SETTLE_S = 5.0
WAITS = ("epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll", "select", "pselect6",
         "futex", "nanosleep", "clock_nanosleep", "read", "wait4", "waitid", "accept4",
         "recvfrom", "recvmsg")
TRACEFS = ("/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls")


def wait_events():
    """The sys_enter tracepoints of WAITS that this kernel has (none without perf)."""
    if not shutil.which("perf"):
        return []
    for root in TRACEFS:
        if os.path.isdir(root):
            return [f"syscalls:sys_enter_{n}" for n in WAITS
                    if os.path.isdir(f"{root}/sys_enter_{n}")]
    return []


def start_perf(pids, seconds, out):
    events = wait_events()
    if not events or not pids:
        return None
    return subprocess.Popen(["perf", "stat", "-x,", "-o", str(out), "-e", ",".join(events),
                             "-p", ",".join(map(str, pids)), "--", "sleep", str(seconds)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def read_perf(proc, out, seconds):
    """{syscall: count} from perf stat's CSV, or None if perf did not run."""
    if proc is None:
        return None
    try:
        proc.wait(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
    counts = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_"):
            name = fields[2].removeprefix("syscalls:sys_enter_")
            counts[name] = int(fields[0]) if fields[0].isdigit() else 0
    return counts or None


def sample(pids):
    vol, invol = procfs.ctxt_switches(pids)
    return {"t": time.monotonic(), "ticks": procfs.cpu_ticks(pids), "vol": vol, "invol": invol}


def measure(subject_classes, tools, plan, log):
    results = {}
    with contextlib.ExitStack() as stack:
        live = {}
        for cls in subject_classes:
            try:
                live[cls.key] = stack.enter_context(running(
                    cls, tools, "idle", plan.idle_concurrency,
                    lambda ws: Agent(tools.stamp_agent, (str(ws.stamp_log),))))[0]
            except Exception as err:  # one broken subject must not stop the others
                results[cls.key] = {"error": str(err)}
                log(f"  idle: {cls.key} did not start: {err}")
        time.sleep(SETTLE_S)
        pids = {key: subj.pids() for key, subj in live.items()}
        perf_out = {key: tools.workdir / f"perf-idle-{key}.csv" for key in pids}
        perf = {key: start_perf(p, plan.idle_seconds, perf_out[key]) for key, p in pids.items()}
        samples = {key: [sample(p)] for key, p in pids.items()}
        for _ in range(plan.idle_seconds // plan.idle_window_s):
            time.sleep(plan.idle_window_s)
            for key, p in pids.items():
                samples[key].append(sample(p))
        for key, p in pids.items():
            results[key] = summarize(samples[key], procfs.memory_kib(p))
            waits = read_perf(perf[key], perf_out[key], plan.idle_seconds)
            results[key]["waits"] = waits
            results[key]["waits_per_min"] = (sum(waits.values()) * 60.0 / plan.idle_seconds
                                             if waits is not None else None)
            log(f"  idle {key}: {fmt(results[key])}")
    return results


def summarize(samples, mem):
    first, last = samples[0], samples[-1]
    minutes = (last["t"] - first["t"]) / 60.0
    per_min = []
    for a, b in zip(samples, samples[1:]):
        per_min.append((b["vol"] - a["vol"]) * 60.0 / (b["t"] - a["t"]))
    ticks = last["ticks"] - first["ticks"]
    return {"seconds": last["t"] - first["t"], "cpu_ticks": ticks,
            "cpu_seconds": ticks / procfs.CLK_TCK,
            "ctxt_per_min": ((last["vol"] + last["invol"]) - (first["vol"] + first["invol"])) / minutes,
            "wakeups_per_min": stats.spread(per_min),
            "rss_kib": mem["VmRSS"], "hwm_kib": mem["VmHWM"], "threads": mem["Threads"]}


def fmt(res):
    waits = res.get("waits")
    busy = ", ".join(f"{k} {v}" for k, v in sorted((waits or {}).items()) if v)
    return (f"waits entered/min {res['waits_per_min'] or 0:.0f} ({busy or 'none'}), "
            f"{res['cpu_ticks']} ticks ({res['cpu_seconds']:.2f} s CPU) over {res['seconds']:.0f} s,"
            f" {res['ctxt_per_min']:.0f} ctxt switches/min, voluntary/min "
            f"{stats.fmt(res['wakeups_per_min'], 0)}, RSS {res['rss_kib'] / 1024:.1f} MiB,"
            f" {res['threads']} threads")
