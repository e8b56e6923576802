"""The results file: markdown tables of every figure, beside its ceiling."""

from .stats import fmt

TARGETS = [  # issue 8, for the worker-watcher row
    ("detection p99", "< 2 ms"),
    ("throughput, c=4, durable results", ">= 80 % of the raw spawn ceiling"),
    ("idle", "0 CPU ticks; only heartbeat wake-ups"),
    ("RSS idle / with 100,000 queued", "< 4 MiB / < 64 MiB"),
    ("READY with 100,000 queued", "< 2 s"),
]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def mib(summary):
    if summary is None:
        return "n/a"
    scaled = {k: (v / 1024 if k != "runs" else v) for k, v in summary.items()}
    return fmt(scaled, 1)


def render(res):
    out = [f"# worker-watcher benchmarks: {res['mode']} run, {res['date']}\n",
           f"Command: `{res['command']}`. Figures are medians over runs, [min–max] beside"
           " them where runs differ. Every subject runs the same agent"
           " (`stamp_agent`, a static C no-op that records its start time).\n"]
    out.append("## Machine\n")
    out.append(table(["fact", "value"], list(res["machine"].items())))
    out.append("\n## Subjects\n")
    rows = [(s["label"], res["versions"].get(s["version_key"], ""), s["status"])
            for s in res["subjects"]]
    out.append(table(["subject", "version", "status"], rows))
    out += [ceilings(res), latency(res), throughput(res), idle(res), memory(res), targets(res)]
    out.append(load(res))
    out.append("\n## Notes\n")
    out += [f"- {n}\n" for n in res["notes"]] or ["- none\n"]
    return "\n".join(out)


def load(res):
    out = ["\n## Load from outside the benchmark\n\nCPU used by other processes while each phase"
           " ran (machine busy time minus the harness and its reaped descendants; % of all"
           " CPUs), and the hypervisor's steal. High figures mean noisy rows.\n"]
    rows = [(phase, f"{v['seconds']:.0f}", f"{v['other_cpu_s']:.1f}", f"{v['other_pct']:.1f}",
             f"{v['steal_pct']:.1f}", v["loadavg"])
            for phase, v in res.get("load", {}).items() if v]
    out.append(table(["phase", "wall s", "others' CPU s", "others' %", "steal %", "loadavg 1m"],
                     rows))
    return "\n".join(out)


def labels(res):
    return {s["key"]: s["label"] for s in res["subjects"]}


def ceilings(res):
    ceil = res.get("ceilings", {})
    out = ["\n## Ceilings\n", "Raw spawn-and-wait (`spawn_ceiling`, posix_spawn + wait, no queue),"
           " tasks/s:\n"]
    rows = [(k.split("/")[0], k.split("/")[1], k.split("/")[2], fmt(v, 0))
            for k, v in ceil.get("spawn", {}).items()]
    out.append(table(["agent", "tasks", "concurrency", "tasks/s"], rows))
    out.append("\nResult-file write floor (`durable_write`, one file at a time):\n")
    rows = [(mode, fmt(v["per_s"], 0), fmt(v["p50_us"], 0), fmt(v["p99_us"], 0))
            for mode, v in ceil.get("write", {}).items()]
    out.append(table(["mode", "files/s", "p50 µs", "p99 µs"], rows))
    return "\n".join(out)


def latency(res):
    out = [f"\n## Detection latency (ms)\n\n{res['plan']['latency_tasks']} tasks per run,"
           f" {res['plan']['latency_runs']} runs, renamed into the queue"
           f" {res['plan']['latency_gap_s'] * 1000:.0f} ms apart (peers without a queue folder:"
           " their client command); rename → agent start. Concurrency"
           f" {res['plan']['latency_concurrency']}.\n"]
    rows = []
    for key, r in res.get("latency", {}).items():
        if "error" in r:
            rows.append((labels(res)[key], "error", "", "", "", r["error"][:120]))
            continue
        rows.append((labels(res)[key], fmt(r["p50"], 2), fmt(r["p90"], 2), fmt(r["p99"], 2),
                     fmt(r["max"], 2), r["lost"]))
    out.append(table(["subject", "p50", "p90", "p99", "max", "lost"], rows))
    return "\n".join(out)


def throughput(res):
    tp = res.get("throughput", {})
    cells = sorted({c for r in tp.values() if "error" not in r for c in r},
                   key=lambda c: tuple(int(x) for x in c.split("/")))
    out = ["\n## Throughput (tasks/s)\n\nAll tasks dropped at once (renamed in from a staging"
           " folder, or one client call each); done when every result (worker-watcher, Python"
           " reference: result file; others: the agent's line in the stamp log) exists, polled every 5 ms."
           " In parentheses: the share of the raw spawn-and-wait ceiling (same agent, N and c)"
           " measured right after each run, paired run by run so that drifting load from"
           " outside cancels out; median [min–max] of the ratios."
           " Columns are N/concurrency.\n"]
    spawn = res.get("ceilings", {}).get("spawn", {})
    rows = [["ceiling: raw spawn-and-wait (ceilings phase)"] +
            [fmt(spawn.get(f"stamp_agent/{c}"), 0) for c in cells]]
    cpu_rows = []
    for key, r in tp.items():
        if "error" in r:
            rows.append([labels(res)[key], "error: " + r["error"][:100]] + [""] * (len(cells) - 1))
            continue
        row, cpu = [labels(res)[key]], [labels(res)[key]]
        for c in cells:
            cell = r.get(c)
            if cell is None or "skipped" in cell:
                row.append("skipped" if cell else "n/a")
                cpu.append("n/a")
                continue
            text = fmt(cell["per_s"], 0)
            if cell.get("of_ceiling"):
                pct = {k: (100 * v if k != "runs" else v) for k, v in cell["of_ceiling"].items()}
                text += f" ({fmt(pct, 0, ' %')})"
            if not cell["complete"]:
                last = cell["runs"][-1]
                text += f" INCOMPLETE ({last['done']}/{last['n']} in {last['seconds']:.0f} s)"
            row.append(text)
            cpu.append(fmt(cell["cpu_ms_per_task"], 2))
        rows.append(row)
        cpu_rows.append(cpu)
    out.append(table(["subject"] + cells, rows))
    out.append("\nCPU time of the daemon itself per task (ms; agents not counted):\n")
    out.append(table(["subject"] + cells, cpu_rows))
    return "\n".join(out)


def idle(res):
    out = [f"\n## Idle cost\n\nAll subjects started together at concurrency"
           f" {res['plan']['idle_concurrency']}, left {res['plan']['idle_seconds']} s after a"
           " 5 s settle. CPU from /proc/PID/stat (utime+stime, all threads); context switches"
           " summed over /proc/PID/task/*/status; voluntary switches per minute (every block and"
           " wake, disk waits included), median over"
           f" {res['plan']['idle_window_s']} s windows; waits entered = blocking syscalls"
           " (epoll_wait, poll, futex, nanosleep, read, ...) counted by `perf stat` on the"
           " syscall tracepoints over the same window, i.e. the program's own wake-ups.\n"]
    rows = []
    for key, r in res.get("idle", {}).items():
        if "error" in r:
            rows.append((labels(res)[key], "error: " + r["error"][:100], "", "", "", ""))
            continue
        waits = r.get("waits") or {}
        which = ", ".join(f"{k} {v}" for k, v in sorted(waits.items(), key=lambda kv: -kv[1]) if v)
        rows.append((labels(res)[key], r["cpu_ticks"], f"{r['cpu_seconds']:.2f}",
                     f"{r['ctxt_per_min']:.0f}", fmt(r["wakeups_per_min"], 0),
                     "n/a" if r.get("waits_per_min") is None else f"{r['waits_per_min']:.0f}",
                     which or "–", f"{r['rss_kib'] / 1024:.1f}", r["threads"]))
    out.append(table(["subject", "CPU ticks", "CPU s", "ctxt switches/min",
                      "voluntary switches/min", "waits entered/min (perf)", "which waits",
                      "RSS MiB", "threads"], rows))
    return "\n".join(out)


def memory(res):
    plan = res["plan"]
    big = max(plan["throughput_sizes"])
    conc = 4 if 4 in plan["throughput_concurrency"] else max(plan["throughput_concurrency"])
    out = [f"\n## Memory (MiB) and start-up\n\nIdle: RSS in the idle run. Under load: VmHWM"
           f" after the N={big}, c={conc} throughput runs. Queued: {plan['queued_tasks']} tasks"
           " waiting behind a hanging agent at concurrency 1 (worker-watcher: present at start-up;"
           " Python reference: dropped while it runs, as it has no backlog scan); 'queued' is"
           " what the daemon's heartbeat reported. Daemon processes only.\n"]
    rows = []
    for s in res["subjects"]:
        key = s["key"]
        idle_r = res.get("idle", {}).get(key, {})
        tp = res.get("throughput", {}).get(key, {}).get(f"{big}/{conc}")
        q = res.get("memory", {}).get(key)
        rows.append((s["label"],
                     f"{idle_r['rss_kib'] / 1024:.1f}" if "rss_kib" in idle_r else "n/a",
                     mib(tp["hwm_kib"]) if tp and "hwm_kib" in tp else "n/a",
                     fmt(q["queued"], 0) if q else "n/a",
                     mib(q["rss_kib"]) if q else "n/a", mib(q["hwm_kib"]) if q else "n/a",
                     fmt(q["ready_s"], 3, " s") if q else "n/a"))
    out.append(table(["subject", "RSS idle", "HWM under load", "queued (heartbeat)",
                      "RSS queued", "HWM queued",
                      "READY with queue"], rows))
    return "\n".join(out)


def targets(res):
    out = ["\n## Targets of issue 8 (worker-watcher)\n"]
    status = next((s["status"] for s in res["subjects"] if s["key"] == "ww"), "absent")
    if status != "measured":
        out.append(f"Not measured: worker-watcher {status}.\n")
    out.append(table(["target", "goal"], TARGETS))
    return "\n".join(out)
