"""Entry point: python3 -m harness [--quick] [--out DIR] [--only KEYS] [--phases LIST]."""

import argparse
import dataclasses
import datetime
import json
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from . import idle, latency, machine, memory, report, throughput
from .config import FULL, QUICK, Agent, Tools
from .session import running
from .subjects import ALL, SubjectError, WorkerWatcher, tail
from .workload import wait_all

SETTLE_AFTER_DELETE_S = 90
PHASES = ("ceilings", "latency", "throughput", "idle", "memory")
VERSION_KEYS = {"floor": "gcc", "ww": "worker-watcher", "pyref": "python (reference)",
                "xargs": "inotifywait", "tsp": "task-spooler", "pueue": "pueue"}


class Log:
    def __init__(self, path):
        self.file = open(path, "a", encoding="utf-8")
        self.t0 = time.monotonic()

    def __call__(self, msg):
        line = f"[{time.monotonic() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def ww_smoke(tools):
    """None if worker-watcher runs one task end to end, else what went wrong."""
    try:
        with running(WorkerWatcher, tools, "smoke", 1,
                     lambda ws: Agent(tools.stamp_agent, (str(ws.stamp_log),))) as (_, ws):
            ws.drop_one("smoke1")
            result = ws.results / "smoke1.json"
            done, _ = wait_all([result], timeout=10)
            if not done:
                return f"no result file within 10 s ({tail(ws.log('ww'))})"
            status = json.loads(result.read_text()).get("status")
            if status != "completed":
                return f"smoke task ended with status {status!r}"
    except (SubjectError, OSError, ValueError) as err:
        return f"not functional: {err}"
    return None


def select_subjects(tools, only, log):
    chosen, entries = [], []
    for cls in ALL:
        if only and cls.key not in only:
            continue
        reason = cls(tools).missing()
        if reason is None and cls is WorkerWatcher:
            log("checking worker-watcher with one task")
            reason = ww_smoke(tools)
        status = "measured" if reason is None else f"not measured: {reason}"
        log(f"subject {cls.key}: {status}")
        entries.append({"key": cls.key, "label": cls.label, "status": status,
                        "version_key": VERSION_KEYS[cls.key]})
        if reason is None:
            chosen.append(cls)
    return chosen, entries


def guarded(log, notes, what, fn, *args):
    """Run one measurement; an error is logged and noted, and the run goes on."""
    try:
        return fn(*args)
    except Exception as err:
        log(f"ERROR in {what}: {err}")
        log(traceback.format_exc())
        notes.append(f"{what}: error: {err}")
        return {"error": str(err)}


def main():
    parser = argparse.ArgumentParser(description="worker-watcher benchmarks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results"))
    parser.add_argument("--only", help="comma-separated subject keys: "
                        + ",".join(c.key for c in ALL))
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--command", default="bench/run.sh")
    parser.add_argument("--quiet-wait", type=float, default=None,
                        help="seconds to wait at most for other load to settle before starting"
                        " (default 30 quick, 300 full)")
    args = parser.parse_args()

    plan = QUICK if args.quick else FULL
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base_tools = Tools.from_env()
    tools = dataclasses.replace(base_tools, workdir=base_tools.workdir / f"run-{stamp}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / f"run-{stamp}-{plan.mode}.log")
    phases = set(args.phases.split(","))
    only = set(args.only.split(",")) if args.only else None

    res = {"mode": plan.mode, "date": stamp, "command": args.command,
           "machine": machine.facts(tools), "versions": machine.versions(tools),
           "plan": dataclasses.asdict(plan), "notes": []}
    notes = res["notes"]
    if tools.ww_note:
        notes.append(f"worker-watcher build: {tools.ww_note}")
    clear_workdir(base_tools.workdir, res["machine"]["journal (jbd2)"], log)
    quiet = args.quiet_wait if args.quiet_wait is not None else (30 if args.quick else 300)
    res["load"] = {"before": machine.wait_quiet(quiet, log)}
    subjects, res["subjects"] = select_subjects(tools, only, log)

    signal.signal(signal.SIGTERM, interrupt)
    try:
        run_phases(res, subjects, tools, plan, log, quiet, phases)
    except KeyboardInterrupt:
        log("interrupted: writing the results measured so far")
        notes.append("The run was interrupted; phases after the interruption are missing, and"
                     " the phase it interrupted has only the subjects it had finished.")
    add_peer_notes(res, notes)

    base = out / f"results-{stamp}-{plan.mode}"
    base.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str))
    base.with_suffix(".md").write_text(report.render(res))
    (out / f"latest-{plan.mode}.md").write_text(report.render(res))
    log(f"results: {base.with_suffix('.md')}")
    remove_in_background(tools.workdir, log)
    return 0


def interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_phases(res, subjects, tools, plan, log, quiet, phases):
    """Every phase asked for, in order, each result stored in res as soon as it exists."""
    notes = res["notes"]
    if "ceilings" in phases:
        log("== ceilings")
        meter = machine.CpuMeter()
        res["ceilings"] = {"spawn": guarded(log, notes, "spawn ceiling",
                                            throughput.spawn_ceiling, tools, plan, log),
                           "write": guarded(log, notes, "write floor",
                                            throughput.durable_floor, tools, plan, log)}
        res["load"]["ceilings"] = meter.stop()
    for phase, module in (("latency", latency), ("throughput", throughput)):
        if phase in phases:
            res[phase] = {}
            for cls in subjects:
                machine.wait_quiet(quiet / 10, log)
                meter = machine.CpuMeter()
                log(f"== {phase}: {cls.label}")
                res[phase][cls.key] = guarded(log, notes, f"{phase} of {cls.key}",
                                              module.measure, cls, tools, plan, log)
                res["load"][f"{phase}: {cls.key}"] = meter.stop()
    if "idle" in phases:
        log(f"== idle: {plan.idle_seconds} s, all subjects at once")
        meter = machine.CpuMeter()
        res["idle"] = guarded(log, notes, "idle", idle.measure, subjects, tools, plan, log)
        res["load"]["idle"] = meter.stop()
    if "memory" in phases:
        log(f"== memory and start-up with {plan.queued_tasks} queued")
        keys = {c.key for c in subjects}
        meter = machine.CpuMeter()
        res["memory"] = guarded(log, notes, "memory", memory.measure, tools, plan, log,
                                "ww" in keys, "pyref" in keys)
        res["load"]["memory"] = meter.stop()


def clear_workdir(workdir, journal, log):
    """Remove what an earlier run left (only run-* folders), before measuring.

    On ext4 without a journal, files created within a minute or so of a mass
    deletion are slow to allocate, so after removing anything the run waits
    that long rather than measure the aftermath.
    """
    if not workdir.is_dir():
        return
    removed = False
    for old in sorted(workdir.glob("run-*")):
        log(f"removing what an earlier run left: {old}")
        subprocess.run(["rm", "-rf", str(old)], check=False, timeout=1800)
        removed = True
    if removed and journal == "none":
        log(f"waiting {SETTLE_AFTER_DELETE_S} s: freshly freed inodes slow down file creation here")
        time.sleep(SETTLE_AFTER_DELETE_S)


def remove_in_background(workdir, log):
    """Delete this run's workspaces at low priority, after the results are out."""
    proc = subprocess.Popen(["nice", "-n", "19", "ionice", "-c", "3", "rm", "-rf", str(workdir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    log(f"removing {workdir} in the background (pid {proc.pid}); the next run waits for it")


def add_peer_notes(res, notes):
    notes.append("Deep queue (100,000 tasks) is not measured for the peers: inotifywait|xargs"
                 " holds no queue (events past fs.inotify.max_queued_events are lost),"
                 " task-spooler keeps one waiting client process per queued job and blocks new"
                 " clients past TS_MAXCONN, and pueue is fed one client call per task.")
    notes.append("task-spooler and pueue have no queue folder: their latency is from just"
                 " before their client command is spawned; their throughput includes one client"
                 " call per task, made one after another.")
    notes.append("Memory of task-spooler is its server only; each queued job is also a client"
                 " process of its own.")


if __name__ == "__main__":
    sys.exit(main())
