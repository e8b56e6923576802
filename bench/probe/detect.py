#!/usr/bin/env python3
"""Detection latency of one binary, or of the floor, without the harness (issue 18).

    detect.py BIN|floor N [--gap 0.02] [--dir D] [--env K=V]... [--perf OUT | --strace OUT]

N single tasks (plus 2 warm-up), GAP apart, each written to a dot-temp file and renamed into
the queue as the harness does; the agent is bench/.build/stamp_agent,
which records its start time. Prints p50/p90/p99/max of rename -> agent start. The worker runs
with a NOTIFY_SOCKET drained by this process between tasks (no extra thread wakes at a STATUS=
line, unlike the harness's drainer). --env sets a variable of the worker (experiment knobs).
--perf records `perf record -a` of every system call and the scheduler's switch, wake-up and
exec events while the tasks run; bench/probe/detect_keys.py turns that into one line per task
(which thread made which call when, relative to the producer's rename).
"""
import json, os, socket, subprocess, sys, tempfile, time, shlex, argparse
from pathlib import Path
ap = argparse.ArgumentParser()
ap.add_argument("bin"); ap.add_argument("n", type=int)
ap.add_argument("--strace"); ap.add_argument("--perf"); ap.add_argument("--dir", default="/mnt/jext4/det")
ap.add_argument("--gap", type=float, default=0.02)
ap.add_argument("--env", action="append", default=[])
a = ap.parse_args()
Path(a.dir).mkdir(parents=True, exist_ok=True)
root = Path(tempfile.mkdtemp(prefix="d-", dir=a.dir))
q = root/"tasks"/"bench"; q.mkdir(parents=True); (root/"results"/"bench").mkdir(parents=True)
stamps = root/"stamps.log"; stamps.touch()
bench = Path(__file__).resolve().parent.parent
agent = str(bench / ".build" / "stamp_agent")
floor_bin = str(bench / ".build" / "inotify_floor")
if a.bin == "floor":
    proc = subprocess.Popen([floor_bin, str(q), "4", agent, str(stamps)], stdout=subprocess.PIPE, env={"PATH":"/usr/bin:/bin"})
    proc.stdout.readline()
else:
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); ns.bind(str(root/"n.sock"))
    env = {"PATH":"/usr/bin:/bin","CLAUDE_COMMAND":agent,"CLAUDE_ARGS":str(stamps),"MAX_CONCURRENT_TASKS":"4",
           "TASK_TIMEOUT":"3600","HEARTBEAT_INTERVAL":"10","LOG_LEVEL":"WARNING","ENABLE_METRICS":"false","NOTIFY_SOCKET":str(root/"n.sock")}
    for e in a.env:
        k, v = e.split("=", 1); env[k] = v
    proc = subprocess.Popen([a.bin, "bench", "--root", str(root), "--max-concurrent", "4"], env=env, stderr=open(root/"log","wb"))
    while b"READY=1" not in ns.recv(4096): pass
    ns.setblocking(False)
tr = None
if a.perf:
    tr = subprocess.Popen(["perf", "record", "-a", "-q", "-o", a.perf, "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit", "-e", "sched:sched_switch", "-e", "sched:sched_wakeup", "-e", "sched:sched_process_exec", "-e", "sched:sched_waking"], stderr=subprocess.DEVNULL)
    time.sleep(1.5)
elif a.strace:
    tr = subprocess.Popen(["strace", "-f", "-tt", "-T", "-o", a.strace, "-p", str(proc.pid)], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
time.sleep(0.3)
sub = {}
ids = [f"t{i:06d}" for i in range(a.n + 2)]
for tid in ids:
    t0 = time.monotonic()
    tmp = q/f".{tid}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY|os.O_CREAT|os.O_TRUNC, 0o640)
    os.write(fd, json.dumps({"task_id": tid, "description": "bench no-op"}).encode()); os.close(fd)
    sub[tid] = time.time_ns(); os.rename(tmp, q/f"{tid}.json")
    if a.bin != "floor":
        try:
            while True: ns.recv(4096)
        except BlockingIOError: pass
    p = a.gap - (time.monotonic() - t0)
    if p > 0: time.sleep(p)
end = time.monotonic() + 10
while time.monotonic() < end:
    lines = stamps.read_text().splitlines()
    if len(lines) >= len(ids): break
    time.sleep(0.01)
st = dict(l.split() for l in stamps.read_text().splitlines())
lat = sorted((int(st[t]) - sub[t]) / 1e6 for t in ids[2:] if t in st)
if tr: time.sleep(0.5); tr.send_signal(2); tr.wait()
print("PIDS", os.getpid(), proc.pid, file=sys.stderr)
proc.terminate(); proc.wait()
n = len(lat)
print(f"{a.bin.split('/')[-1]}: n={n} p50 {lat[n//2]:.3f} p90 {lat[int(n*0.9)]:.3f} p99 {lat[min(n-1,int(n*0.99))]:.3f} max {lat[-1]:.3f} mean {sum(lat)/n:.3f}")
print(root, file=sys.stderr)
