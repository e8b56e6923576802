#!/usr/bin/env python3
"""detect_keys.py DATA DRIVER_PID DAEMON_PID [N]: one line per task from detect.py --perf.

Times in µs from the producer's rename: the loop's (L), the writer's (W), a sync helper's (S)
or the vfork child's (C) claim (renameat2), creates (openat), renames, syncs and clone, each as
call@start+duration[cpu], and EXEC@t[cpu], when the agent's exec completed.
"""
import re, subprocess, sys, collections, statistics
data, drv, dmn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
N = {0:'read',1:'write',3:'close',82:'rename',257:'openat',316:'renameat2',56:'clone',59:'execve',232:'epoll_wait',75:'fdatasync',74:'fsync',87:'unlink',277:'sfr',202:'futex',41:'socket'}
line_re = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$")
ev = []
p = subprocess.Popen(["perf", "script", "-i", data, "-F", "comm,pid,tid,cpu,time,event,trace"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for l in p.stdout:
    m = line_re.match(l)
    if m:
        comm, pid, tid, cpu, t, e, rest = m.groups()
        ev.append((float(t), comm.strip(), int(pid), int(tid), int(cpu), e, rest))
starts = [i for i, x in enumerate(ev) if x[2] == drv and x[5] == 'raw_syscalls:sys_enter' and x[6].startswith('NR 82 ')]
rows = []
for k, si in enumerate(starts):
    t0 = ev[si][0]
    nxt = starts[k+1] if k+1 < len(starts) else len(ev)
    keys = []; open_ = {}; exec_t = None
    busy = collections.Counter()  # cpu time of others between rename and exec
    for x in ev[si:nxt]:
        t, comm, pid, tid, cpu, e, rest = x
        rel = (t - t0) * 1e6
        if e == 'sched:sched_process_exec' and 'stamp' in rest:
            exec_t = rel; keys.append(f"EXEC@{rel:.0f}[{cpu}]"); continue
        if pid != dmn: continue
        who = 'L' if tid == dmn else ('W' if comm == 'spool-writer' else ('S' if 'sync' in comm else 'C'))
        if e == 'raw_syscalls:sys_enter':
            nr = int(rest.split()[1]); open_[tid] = (rel, nr)
        elif e == 'raw_syscalls:sys_exit' and tid in open_:
            st, nr = open_.pop(tid)
            if nr in (82, 316, 56, 75, 74, 87, 257) or (nr == 232 and who == 'L'):
                keys.append(f"{who}:{N.get(nr,nr)}@{st:.0f}+{rel-st:.0f}[{cpu}]")
    rows.append((k, exec_t, keys))
for k, ex, keys in rows[:int(sys.argv[4]) if len(sys.argv) > 4 else 15]:
    print(k, f"{ex}" , " ".join(keys[:14]))
ex = sorted(r[1] for r in rows if r[1])
print("exec median", statistics.median(ex))
