"""Memory and start-up with a deep queue: QUEUED tasks waiting behind an agent
that does not finish (hang_agent, concurrency 1).

worker-watcher finds them as a backlog at start-up: READY=1 is timed from the
spawn, memory read once it is ready. The Python reference has no backlog scan,
so the tasks are dropped into its queue while it runs, and memory is read once
its heartbeat reports them queued. Peers cannot hold such a queue: see the notes.
"""

import json
import time

from . import procfs, stats
from .config import Agent
from .session import running
from .subjects import PythonRef, WorkerWatcher
from .workload import task_ids

SETTLE_S = 1.0
STALL_S = 5.0


def hang(tools):
    return lambda ws: Agent(tools.hang_agent, ())


def ww_run(tools, plan, run_no):
    ids = task_ids(plan.queued_tasks)
    with running(WorkerWatcher, tools, f"q{run_no}", 1, hang(tools),
                 before_start=lambda ws: ws.fill_queue(ids), ready_timeout=120.0) as (subj, ws):
        time.sleep(SETTLE_S)
        mem = procfs.memory_kib(subj.pids())
        return {"ready_s": subj.ready_seconds, "queued": queued_in_heartbeat(ws), **mem}


def queued_in_heartbeat(ws):
    try:
        return json.loads((ws.heartbeats / f"{ws.worker}.json").read_text()).get("queue_size", 0)
    except (FileNotFoundError, ValueError):
        return 0


def pyref_run(tools, plan, run_no):
    """Drop the tasks into the running reference; read memory once its heartbeat
    shows them queued, or once the count stops growing (events it lost to
    inotify's queue overflow never arrive)."""
    ids = task_ids(plan.queued_tasks)
    with running(PythonRef, tools, f"q{run_no}", 1, hang(tools),
                 before_start=lambda ws: ws.stage(ids), heartbeat=1) as (subj, ws):
        started = time.monotonic()
        ws.drop_staged(ids, started + 120)
        last, last_change, end = -1, time.monotonic(), started + 180
        while time.monotonic() < end and time.monotonic() - last_change < STALL_S:
            queued = queued_in_heartbeat(ws)
            if queued >= len(ids) - 1:
                break
            if queued != last:
                last, last_change = queued, time.monotonic()
            time.sleep(0.5)
        mem = procfs.memory_kib(subj.pids())
        return {"queued_s": time.monotonic() - started, "queued": queued_in_heartbeat(ws), **mem}


def measure(tools, plan, log, with_ww, with_pyref):
    out = {}
    for key, fn, enabled in (("ww", ww_run, with_ww), ("pyref", pyref_run, with_pyref)):
        if not enabled:
            continue
        runs = []
        for run_no in range(plan.queued_runs):
            res = fn(tools, plan, run_no)
            log(f"  {plan.queued_tasks} queued, {key}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()))
            runs.append(res)
        out[key] = {"rss_kib": stats.spread([r["VmRSS"] for r in runs]),
                    "hwm_kib": stats.spread([r["VmHWM"] for r in runs]),
                    "ready_s": stats.spread([r.get("ready_s") for r in runs]),
                    "queued": stats.spread([r.get("queued") for r in runs]), "runs": runs}
    return out
