#!/usr/bin/env python3
"""Where a `perf record -g` profile of the worker spends its CPU, per thread and per cause.

    perf script -i FILE -F comm,pid,tid,ip,sym | by_syscall.py [TASKS [HZ]]

Each sample is charged to its thread (the event loop is the process's main thread, the
writer `spool-writer`, the sync helpers `spool-sync`, the agents by their own name) and to the
first system call or fault on its stack (`__x64_sys_*`, `__do_sys_*`, a page fault), or to
user space. With TASKS, the figures are also given in microseconds of CPU per task, from the
sampling frequency read from the header (`perf record -F`).
"""

import collections
import re
import sys

ENTRY = re.compile(r"\b(__x64_sys_\w+|__do_sys_\w+|ksys_\w+|asm_exc_page_fault|asm_sysvec_\w+)\b")


def main():
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    hz = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    per = collections.defaultdict(collections.Counter)
    names = {}
    loops = set()
    tid = None
    stack = []

    def flush():
        if tid is None:
            return
        cause = "user space"
        # Outermost kernel entry: the stack is printed innermost first.
        for frame in reversed(stack):
            m = ENTRY.search(frame)
            if m:
                cause = re.sub(r"^(__x64_sys_|__do_sys_|ksys_)", "", m.group(1))
                break
        else:
            if any("do_syscall_64" in f for f in stack):
                cause = "other system calls"
            elif stack and stack[0].startswith("ffffffff"):
                cause = "kernel, no call entry (scheduler, interrupt)"
        per[tid][cause] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            tid, stack = None, []
            continue
        if not line.startswith((" ", "\t")):
            flush()
            head = line.split()
            comm, pid_tid = " ".join(head[:-1]), head[-1].rstrip(":")
            pid, tid = pid_tid.split("/")
            if pid == tid and comm.startswith("worker-watch"):
                loops.add(tid)
            names.setdefault(tid, comm)
            stack = []
        else:
            stack.append(line.strip())
    flush()
    # The loop is the busiest of them; the others are agents between clone and exec.
    loops = set(sorted(loops, key=lambda t: -sum(per[t].values()))[:1])
    groups = collections.defaultdict(collections.Counter)
    for t, causes in per.items():
        comm = names[t]
        if comm.startswith("worker-watch"):
            group = "loop" if t in loops else "vfork child before exec"
        else:
            group = comm
        groups[group].update(causes)
    total = sum(sum(c.values()) for c in groups.values())
    for group, causes in sorted(groups.items(), key=lambda g: -sum(g[1].values())):
        n = sum(causes.values())
        line = f"{group}: {n} samples, {100 * n / total:.1f} %"
        if tasks:
            line += f", {n * 1e6 / hz / tasks:.1f} us/task"
        print(line)
        for cause, k in causes.most_common(14):
            extra = f"  {k * 1e6 / hz / tasks:6.1f} us/task" if tasks else ""
            print(f"    {cause:28} {100 * k / n:5.1f} %{extra}")


if __name__ == "__main__":
    main()
