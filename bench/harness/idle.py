"""Idle cost: every subject started at once, each in its own workspace, then left
alone; CPU ticks, context switches and memory read from /proc in windows.

Wake-ups are voluntary context switches, summed over all threads: a thread that
blocks and is woken again switches out voluntarily once per wake-up.
"""

import contextlib
import time

from . import procfs, stats
from .config import Agent
from .session import running

SETTLE_S = 5.0


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
        samples = {key: [sample(p)] for key, p in pids.items()}
        for _ in range(plan.idle_seconds // plan.idle_window_s):
            time.sleep(plan.idle_window_s)
            for key, p in pids.items():
                samples[key].append(sample(p))
        for key, p in pids.items():
            results[key] = summarize(samples[key], procfs.memory_kib(p))
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
    return (f"{res['cpu_ticks']} ticks ({res['cpu_seconds']:.2f} s CPU) over {res['seconds']:.0f} s,"
            f" {res['ctxt_per_min']:.0f} ctxt switches/min, wake-ups/min "
            f"{stats.fmt(res['wakeups_per_min'], 0)}, RSS {res['rss_kib'] / 1024:.1f} MiB,"
            f" {res['threads']} threads")
