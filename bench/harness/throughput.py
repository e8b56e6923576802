"""Throughput: N tasks dropped at once, tasks/s until every result exists; and the
ceilings it is read against (raw spawn-and-wait, durable writes)."""

import json
import subprocess
import time

from . import procfs, stats
from .config import Agent
from .session import running
from .workload import Workspace, task_ids, wait_all, wait_stamps


def one_run(subject_cls, tools, plan, size, concurrency, run_no):
    ids = task_ids(size)
    timeout = plan.run_timeout(size)
    stage = (lambda ws: ws.stage(ids)) if subject_cls.kind == "spool" else None
    with running(subject_cls, tools, f"tp{size}c{concurrency}r{run_no}", concurrency,
                 lambda ws: Agent(tools.stamp_agent, (str(ws.stamp_log),)),
                 before_start=stage) as (subject, ws):
        time.sleep(0.3)
        pids = subject.pids()
        cpu0 = procfs.cpu_ticks(pids)
        started = time.monotonic()
        dropped = subject.drop_all(ws, ids, started + timeout)
        drop_s = time.monotonic() - started
        left = max(1.0, started + timeout - time.monotonic())
        if subject.writes_results:
            done, finished = wait_all([ws.results / f"{t}.json" for t in ids[:dropped]], left)
        else:
            done, finished = wait_stamps(ws.stamp_log, dropped, left)
        elapsed = (finished or time.monotonic()) - started
        mem = procfs.memory_kib(pids)
        cpu = procfs.cpu_ticks(pids) - cpu0
    complete = finished is not None and dropped == size
    per_s = done / elapsed if elapsed > 0 else None
    ceiling = spawn_rate(tools, tools.stamp_agent, size, concurrency)
    return {"n": size, "concurrency": concurrency, "done": done, "complete": complete,
            "seconds": elapsed, "per_s": per_s, "ceiling_per_s": ceiling,
            "of_ceiling": per_s / ceiling if per_s and ceiling else None,
            "drop_seconds": drop_s, "hwm_kib": mem["VmHWM"], "rss_kib": mem["VmRSS"],
            "cpu_ms_per_task": cpu * 1000.0 / procfs.CLK_TCK / max(done, 1)}


def measure(subject_cls, tools, plan, log):
    """Rows keyed "N/c"; a run that times out ends the repetitions of that cell."""
    cells, unfinished = {}, set()
    for size in plan.throughput_sizes:
        for conc in plan.throughput_concurrency:
            if conc in unfinished:
                log(f"  throughput N={size} c={conc}: skipped, a smaller N did not finish")
                cells[f"{size}/{conc}"] = {"skipped": "a smaller N at this concurrency did not"
                                           " finish within its time limit"}
                continue
            runs = []
            for run_no in range(plan.runs_for(size)):
                res = one_run(subject_cls, tools, plan, size, conc, run_no)
                log(f"  throughput N={size} c={conc} run {run_no + 1}: {fmt_run(res)}")
                runs.append(res)
                if not res["complete"]:
                    unfinished.add(conc)
                    break
            cells[f"{size}/{conc}"] = summarize(runs)
    return cells


def summarize(runs):
    complete = [r for r in runs if r["complete"]]
    use = complete or runs
    return {"per_s": stats.spread([r["per_s"] for r in use]),
            "of_ceiling": stats.spread([r["of_ceiling"] for r in use]),
            "hwm_kib": stats.spread([r["hwm_kib"] for r in use]),
            "cpu_ms_per_task": stats.spread([r["cpu_ms_per_task"] for r in use]),
            "complete": bool(complete), "runs": runs}


def fmt_run(res):
    state = "" if res["complete"] else f" INCOMPLETE {res['done']}/{res['n']}"
    return (f"{res['per_s']:.0f} tasks/s in {res['seconds']:.2f}s, paired ceiling "
            f"{res['ceiling_per_s']:.0f}/s (drop {res['drop_seconds']:.2f}s,"
            f" HWM {res['hwm_kib'] / 1024:.1f} MiB, {res['cpu_ms_per_task']:.2f} ms CPU/task){state}")


def spawn_rate(tools, agent, size, concurrency):
    """One run of the raw spawn-and-wait ceiling; tasks/s."""
    ws = Workspace(tools.workdir, "spawn")
    cmd = [tools.ceiling("spawn_ceiling"), str(size), str(concurrency), agent]
    if agent == tools.stamp_agent:
        cmd.append(str(ws.stamp_log))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout)["per_s"]


def spawn_ceiling(tools, plan, log):
    """Raw spawn-and-wait of the same agents at the same concurrency, no queue."""
    out = {}
    for agent_name in ("stamp_agent", "noop_agent"):
        for size in plan.throughput_sizes:
            for conc in plan.throughput_concurrency:
                agent = str(tools.build / agent_name)
                rates = [spawn_rate(tools, agent, size, conc) for _ in range(plan.runs_for(size))]
                out[f"{agent_name}/{size}/{conc}"] = stats.spread(rates)
                log(f"  spawn ceiling {agent_name} N={size} c={conc}: "
                    f"{stats.fmt(out[f'{agent_name}/{size}/{conc}'], 0)} tasks/s")
    return out


def durable_floor(tools, plan, log):
    """Temp file, fsync, rename, fsync dir, one at a time; and the same without fsync."""
    out = {}
    for mode in ("durable", "plain"):
        runs = []
        for _ in range(plan.durable_runs):
            ws = Workspace(tools.workdir, "durable")
            cmd = [tools.ceiling("durable_write"), str(ws.results), str(plan.durable_files)]
            if mode == "plain":
                cmd.append("--plain")
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            runs.append(json.loads(proc.stdout))
        out[mode] = {k: stats.spread([r[k] for r in runs]) for k in ("per_s", "p50_us", "p99_us")}
        log(f"  write floor ({mode}): {stats.fmt(out[mode]['per_s'], 0)} files/s, "
            f"p50 {stats.fmt(out[mode]['p50_us'], 0)} us, p99 {stats.fmt(out[mode]['p99_us'], 0)} us")
    return out
