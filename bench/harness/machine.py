"""Facts about the machine and the tools, printed at the head of every report."""

import os
import platform
import subprocess
import time
from pathlib import Path


def _first_line(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "n/a"


def _cpuinfo(key):
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return "n/a"


def _meminfo_gib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "n/a"


def _os_name():
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "n/a"


def _sysctl(name):
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return "n/a"


class CpuMeter:
    """CPU the rest of the machine used while the benchmark ran a phase.

    Busy time from /proc/stat, minus what this harness and every descendant it
    has reaped used (os.times), so what is left is other people's work. Steal
    time (the hypervisor's other guests) is kept apart.
    """

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        tck = os.sysconf("SC_CLK_TCK")
        own = os.times()
        return {"busy": (user + nice + system + irq + softirq) / tck, "steal": steal / tck,
                "own": own.user + own.system + own.children_user + own.children_system,
                "t": time.monotonic()}

    def stop(self):
        end = self._read()
        wall = (end["t"] - self.start["t"]) * (os.cpu_count() or 1)
        other = max(0.0, (end["busy"] - self.start["busy"]) - (end["own"] - self.start["own"]))
        steal = end["steal"] - self.start["steal"]
        return {"seconds": end["t"] - self.start["t"], "other_cpu_s": other,
                "other_pct": 100.0 * other / wall if wall else 0.0,
                "steal_pct": 100.0 * steal / wall if wall else 0.0,
                "loadavg": Path("/proc/loadavg").read_text().split()[0]}


def wait_quiet(limit_s, log, threshold_pct=15.0, window_s=5.0):
    """Wait (at most limit_s) until others use under threshold_pct of the CPUs."""
    end = time.monotonic() + limit_s
    while True:
        meter = CpuMeter()
        time.sleep(window_s)
        load = meter.stop()
        if load["other_pct"] < threshold_pct:
            log(f"machine quiet: {load['other_pct']:.0f} % CPU used by others")
            return load
        if time.monotonic() > end:
            log(f"machine still busy after {limit_s:.0f} s ({load['other_pct']:.0f} % CPU"
                " used by others): measuring anyway, figures will be noisier")
            return load
        log(f"waiting for a quiet machine: {load['other_pct']:.0f} % CPU used by others")


def _journal(workdir):
    """Whether the filesystem under workdir has a jbd2 journal (ext4 without one
    pays extra for every file created soon after others were deleted)."""
    source = _first_line(["findmnt", "-no", "SOURCE", "-T", workdir])
    device = os.path.basename(source)
    try:
        journals = os.listdir("/proc/fs/jbd2")
    except OSError:
        return "n/a"
    return "yes" if any(j.startswith(device + "-") for j in journals) else "none"


def facts(tools):
    workdir = str(tools.workdir)
    return {
        "nproc": str(os.cpu_count()),
        "cpu": _cpuinfo("model name"),
        "kernel": platform.release(),
        "os": _os_name(),
        "memory": _meminfo_gib(),
        "filesystem": _first_line(["findmnt", "-no", "FSTYPE,SOURCE,OPTIONS", "-T", workdir]),
        "workdir": workdir,
        "journal (jbd2)": _journal(workdir),
        "fs.inotify.max_queued_events": _sysctl("fs.inotify.max_queued_events"),
        "clock ticks/s": str(os.sysconf("SC_CLK_TCK")),
    }


def versions(tools):
    out = {
        "gcc": _first_line(["gcc", "--version"]),
        "python (reference)": _first_line([tools.venv_python, "-c",
                                           "import sys, importlib.metadata as m; "
                                           "print(sys.version.split()[0], 'watchdog',"
                                           " m.version('watchdog'))"]),
    }
    if tools.inotifywait:
        out["inotifywait"] = _first_line([tools.inotifywait, "--help"])
    if tools.xargs:
        out["xargs"] = _first_line([tools.xargs, "--version"])
    if tools.tsp:
        out["task-spooler"] = _first_line([tools.tsp, "-V"])
    if tools.pueue:
        out["pueue"] = _first_line([tools.pueue, "--version"])
    if tools.ww_bin and os.access(tools.ww_bin, os.X_OK):
        out["worker-watcher"] = _first_line([tools.ww_bin, "--version"]) + f" ({tools.ww_bin})"
    return out
