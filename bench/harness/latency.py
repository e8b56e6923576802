"""Detection latency: tasks renamed into the queue one at a time, GAP apart; the
time from the rename (or the client call) to the agent's own start time."""

import time

from . import stats
from .config import Agent
from .session import running
from .workload import read_stamps, task_ids, wait_stamps

WARMUP = 2  # first tasks page the agent in; dropped, not counted


def one_run(subject_cls, tools, plan, run_no):
    ids = task_ids(plan.latency_tasks + WARMUP)
    with running(subject_cls, tools, f"lat{run_no}", plan.latency_concurrency,
                 lambda ws: Agent(tools.stamp_agent, (str(ws.stamp_log),))) as (subject, ws):
        time.sleep(0.3)
        submitted = {}
        for tid in ids:
            begun = time.monotonic()
            submitted[tid] = subject.submit(ws, tid)
            pause = plan.latency_gap_s - (time.monotonic() - begun)
            if pause > 0:
                time.sleep(pause)
        wait_stamps(ws.stamp_log, len(ids), timeout=30)
        started = read_stamps(ws.stamp_log)
    counted = ids[WARMUP:]
    lat = [(started[t] - submitted[t]) / 1e6 for t in counted if t in started]
    result = stats.latency_summary(lat) if lat else {"n": 0}
    result["lost"] = len(counted) - len(lat)
    return result


def measure(subject_cls, tools, plan, log):
    runs = []
    for run_no in range(plan.latency_runs):
        res = one_run(subject_cls, tools, plan, run_no)
        log(f"  latency run {run_no + 1}: {fmt_run(res)}")
        runs.append(res)
    keys = ("p50", "p90", "p99", "max")
    summary = {k: stats.spread([r.get(k) for r in runs]) for k in keys}
    summary["lost"] = sum(r["lost"] for r in runs)
    summary["runs"] = runs
    return summary


def fmt_run(res):
    if not res.get("n"):
        return f"no agent start recorded (lost {res['lost']})"
    return (f"p50 {res['p50']:.2f} p90 {res['p90']:.2f} p99 {res['p99']:.2f} "
            f"max {res['max']:.2f} ms (n={res['n']}, lost {res['lost']})")
