#!/usr/bin/env python3
"""Soak: one worker, many tasks with random outcomes, random kill -9 and SIGHUP, bounded time.

    cargo build --release
    tests/soak/soak.py [--tasks 100000] [--minutes 15] [--bin target/release/worker-watcher]

A producer keeps a backlog queued until --tasks are submitted; a chaos loop kills the worker
with SIGKILL every 30-90 s (and restarts it at once, as systemd's Restart= would) and sends it
SIGHUP every 5-15 s. Then the chaos stops, the last worker drains what is left, and the checks
run: every task has exactly one final outcome (one result; a dead letter only beside a failed
one) and the outcome its kind asked for; nothing is left queued, in flight or half-written;
RSS stays flat and no fd leaks (/proc/PID/fd of an idle worker, at its start and at the end).
Exits 1 on any failed check. Not part of `cargo test`: it runs for --minutes and more.
"""

import argparse, json, os, random, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORKER = "soak"
# (word, share, expected status, expected reason)
KINDS = [
    ("ok", 0.78, "completed", None),
    ("flaky", 0.08, "completed", None),
    ("slow", 0.05, "completed", None),
    ("text", 0.02, "completed", None),
    ("fail", 0.03, "failed", "exit_code"),
    ("agent-error", 0.03, "failed", "agent_error"),
    ("invalid", 0.01, "failed", "invalid"),
]


def proc_stat(pid):
    """(RSS in KiB, open fds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None


class Soak:
    def __init__(self, args):
        self.args = args
        self.root = tempfile.mkdtemp(prefix="ww-soak.", dir=args.dir)
        self.queue = os.path.join(self.root, "tasks", WORKER)
        self.runs = os.path.join(self.root, "runs.log")
        self.log = open(os.path.join(self.root, "worker.log"), "ab")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CLAUDE_COMMAND": os.path.join(HERE, "agent"), "CLAUDE_ARGS": "",
            "SOAK_RUNS": self.runs, "MAX_CONCURRENT_TASKS": "8", "MAX_RETRIES": "2",
            "INITIAL_RETRY_DELAY": "0.2", "RETRY_BACKOFF": "2", "MAX_RECLAIMS": "1000",
            "CIRCUIT_BREAKER_THRESHOLD": "50", "CIRCUIT_BREAKER_TIMEOUT": "2",
            "TASK_TIMEOUT": "60", "HEARTBEAT_INTERVAL": "2", "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json", "ENABLE_METRICS": "false",
        }
        self.proc = None
        self.expected = {}  # task id -> kind index
        self.samples = []  # (incarnation, seconds since its start, rss KiB, fds)
        self.kills = self.hups = 0
        self.incarnation = 0
        self.started_at = 0.0

    def start(self):
        self.incarnation += 1
        self.proc = subprocess.Popen([self.args.bin, WORKER, "--root", self.root], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.started_at = time.monotonic()
        hb = os.path.join(self.root, "heartbeats", f"{WORKER}.json")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # ready once its heartbeat names it
            try:
                with open(hb) as f:
                    if json.load(f).get("pid") == self.proc.pid:
                        return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                sys.exit(f"FAIL: the worker exited with {self.proc.returncode} at start")
            time.sleep(0.05)
        sys.exit("FAIL: the worker did not start within 60 s")

    def sample(self):
        s = proc_stat(self.proc.pid)
        if s:
            self.samples.append((self.incarnation, time.monotonic() - self.started_at, *s))

    def submit(self, i):
        kind = random.choices(range(len(KINDS)), weights=[k[1] for k in KINDS])[0]
        tid = f"s{i:06d}"
        self.expected[tid] = kind
        word = KINDS[kind][0]
        body = "{not json" if word == "invalid" else json.dumps({"task_id": tid, "description": f"{word} task {i}"})
        tmp = os.path.join(self.queue, f".{tid}.tmp")
        with open(tmp, "w") as f:
            f.write(body)
        os.rename(tmp, os.path.join(self.queue, f"{tid}.json"))

    def queued(self):
        return sum(1 for n in os.listdir(self.queue) if not n.startswith("."))

    def outcomes(self):
        return len(os.listdir(os.path.join(self.root, "results", WORKER)))

    def chaos(self):
        """Submits every task while killing and reloading the worker; returns when all are in."""
        n, end = self.args.tasks, time.monotonic() + self.args.minutes * 60
        submitted, next_kill, next_hup, next_sample = 0, time.monotonic() + random.uniform(30, 90), 0.0, 0.0
        # Pace the producer so the submissions last most of the run, with a bounded backlog.
        pace = n / max(self.args.minutes * 60 * 0.85, 1)
        t0 = time.monotonic()
        while submitted < n:
            now = time.monotonic()
            if now > end + max(600, self.args.minutes * 60):
                sys.exit(f"FAIL: only {submitted} of {n} tasks submitted in time")
            due = min(n, int((now - t0) * pace) + 200)
            if self.queued() < 2000:
                while submitted < due:
                    self.submit(submitted)
                    submitted += 1
            if now >= next_sample:
                self.sample()
                next_sample = now + 5
            if now >= next_kill:
                self.proc.kill()
                self.proc.wait()
                self.kills += 1
                self.start()
                next_kill = time.monotonic() + random.uniform(30, 90)
            elif now >= next_hup:
                self.proc.send_signal(signal.SIGHUP)
                self.hups += 1
                next_hup = now + random.uniform(5, 15)
            time.sleep(0.1)
        print(f"submitted {n} tasks in {time.monotonic() - t0:.0f} s; {self.kills} kill -9, {self.hups} SIGHUP")

    def drain(self):
        """Waits for every outcome with the last worker, then for it to be idle."""
        deadline = time.monotonic() + 1800
        while self.outcomes() < self.args.tasks:
            if time.monotonic() > deadline:
                sys.exit(f"FAIL: {self.outcomes()} outcomes of {self.args.tasks} after 30 min of draining")
            self.sample()
            time.sleep(1)
        hb = os.path.join(self.root, "heartbeats", f"{WORKER}.json")
        for _ in range(100):  # the heartbeat after the last outcome says idle
            with open(hb) as f:
                h = json.load(f)
            if h["active_tasks"] == 0 and h["queue_size"] == 0 and h["retry_waiting"] == 0:
                break
            time.sleep(0.2)

    def check(self, t_start, idle_fds_at_start):
        fails = []
        results_dir = os.path.join(self.root, "results", WORKER)
        dlq_dir = os.path.join(self.root, "dlq", WORKER)
        results = set(os.listdir(results_dir))
        dlq = {}
        for name in os.listdir(dlq_dir):
            if name.startswith("."):
                continue
            with open(os.path.join(dlq_dir, name)) as f:
                rec = json.load(f)
            tid = rec.get("task_id") or ""
            dlq[tid] = dlq.get(tid, 0) + 1
        by_status, attempts = {}, {}
        for tid, kind in self.expected.items():
            word, _, status, reason = KINDS[kind]
            if f"{tid}.json" not in results:
                fails.append(f"{tid}: no result")
                continue
            try:
                with open(os.path.join(results_dir, f"{tid}.json")) as f:
                    r = json.load(f)
            except ValueError as e:
                fails.append(f"{tid}: result not JSON: {e}")
                continue
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
            attempts[tid] = r.get("attempts", 0)
            if (r["status"], r.get("reason")) != (status, reason):
                fails.append(f"{tid} ({word}): {r['status']}/{r.get('reason')}, expected {status}/{reason}")
            want_dlq = 1 if status == "failed" else 0
            if dlq.get(tid, 0) != want_dlq:
                fails.append(f"{tid} ({word}): {dlq.get(tid, 0)} dead letters, expected {want_dlq}")
        extra = results - {f"{t}.json" for t in self.expected}
        if extra:
            fails.append(f"{len(extra)} results of unknown tasks: {sorted(extra)[:5]}")
        left = [os.path.join(d, n) for d in (self.queue, os.path.join(self.queue, ".inflight"))
                for n in os.listdir(d) if not n.startswith(".")]
        temps = [os.path.join(d, n) for d, _, names in os.walk(self.root) for n in names
                 if n.startswith(".ww-") and n.endswith(".tmp")]
        if left:
            fails.append(f"left queued or in flight: {left[:5]}")
        if temps:
            fails.append(f"temp files left: {temps[:5]}")
        runs = {}
        with open(self.runs) as f:
            for line in f:
                tid = line.split(" ")[0]
                runs[tid] = runs.get(tid, 0) + 1
        # Runs beyond the attempts each result counts: tasks running when a kill -9 came.
        reruns = sum(max(0, runs.get(t, 0) - a) for t, a in attempts.items())
        idle_fds_end = proc_stat(self.proc.pid)[1]
        if idle_fds_end != idle_fds_at_start:
            fails.append(f"fd count of an idle worker: {idle_fds_at_start} at start, {idle_fds_end} at the end")
        report = self.report(time.monotonic() - t_start, by_status, sum(runs.values()), reruns,
                             idle_fds_at_start, idle_fds_end, fails)
        print(report)
        with open(os.path.join(self.root, "report.txt"), "w") as f:
            f.write(report + "\n")
        return fails

    def report(self, wall, by_status, runs, reruns, fds0, fds1, fails):
        last = [s for s in self.samples if s[0] == self.incarnation]
        longest = max({s[0] for s in self.samples}, key=lambda i: max(s[1] for s in self.samples if s[0] == i))
        life = [s for s in self.samples if s[0] == longest]
        early = [s[2] for s in life if s[1] <= life[-1][1] / 4] or [life[0][2]]
        rss_all = [s[2] for s in self.samples]
        if life[-1][2] > 1.5 * max(early) + 4096:
            fails.append(f"RSS grew: {max(early)} KiB early, {life[-1][2]} KiB at the end of the longest life")
        lines = [
            f"soak: {self.args.tasks} tasks in {wall / 60:.1f} min ({self.args.tasks / wall:.0f} tasks/s overall), "
            f"{self.kills} kill -9, {self.hups} SIGHUP, {self.incarnation} worker processes",
            f"outcomes: {by_status}; agent runs {runs}; runs repeated after a kill -9: {reruns}",
            f"RSS KiB: min {min(rss_all)}, max {max(rss_all)}; longest-lived worker ({life[-1][1]:.0f} s): "
            f"{max(early)} in its first quarter, {life[-1][2]} at its end; last worker at the end {last[-1][2]}",
            f"fds of an idle worker: {fds0} at start, {fds1} at the end; max fds seen {max(s[3] for s in self.samples)}",
            f"root: {self.root}",
            "checks: " + ("all passed" if not fails else f"{len(fails)} FAILED:\n  " + "\n  ".join(fails[:30])),
        ]
        return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--bin", default=os.path.join(REPO, "target", "release", "worker-watcher"))
    p.add_argument("--dir", default="/var/tmp", help="where the spool is made (a disk, not tmpfs)")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    random.seed(args.seed)
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no worker binary at {args.bin}: cargo build --release (or --bin)")
    s = Soak(args)
    t_start = time.monotonic()
    try:
        s.start()
        fds_idle = proc_stat(s.proc.pid)[1]
        s.chaos()
        s.drain()
        fails = s.check(t_start, fds_idle)
    finally:
        if s.proc and s.proc.poll() is None:
            s.proc.terminate()
            s.proc.wait(timeout=60)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
