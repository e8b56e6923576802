"""What /proc says about a set of processes: CPU ticks, context switches, memory.

A daemon may be several processes (inotifywait | xargs) and several threads
(watchdog, tokio); every figure here is summed over all of them. Per-process
files are summed over threads where the kernel reports per thread only.
"""

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(path):
    try:
        return Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def cpu_ticks(pids):
    """utime + stime in clock ticks, summed over processes (threads included)."""
    total = 0
    for pid in pids:
        stat = _read(f"/proc/{pid}/stat")
        if stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def _status_fields(path, names):
    out = dict.fromkeys(names, 0)
    for line in _read(path).splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0])
    return out


def ctxt_switches(pids):
    """(voluntary, involuntary) context switches, summed over every thread."""
    vol = invol = 0
    names = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            fields = _status_fields(f"/proc/{pid}/task/{tid}/status", names)
            vol += fields[names[0]]
            invol += fields[names[1]]
    return vol, invol


def memory_kib(pids):
    """VmRSS, VmHWM (KiB) and thread count, summed over processes."""
    total = {"VmRSS": 0, "VmHWM": 0, "Threads": 0}
    for pid in pids:
        fields = _status_fields(f"/proc/{pid}/status", tuple(total))
        for key in total:
            total[key] += fields[key]
    return total


def children(pid):
    """Direct children of pid (threads' children included)."""
    kids = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for tid in tids:
        kids += [int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split()]
    return kids


def pids_with_exe(exe):
    """Processes whose executable is exactly this path (for cleaning up by pid)."""
    target = os.path.realpath(exe)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") == target:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def pids_with_env(exe_name, key, value):
    """Processes named exe_name whose environment holds key=value."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.path.basename(os.readlink(f"/proc/{entry}/exe")) != exe_name:
                continue
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in env:
            found.append(int(entry))
    return found
