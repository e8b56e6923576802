#!/usr/bin/env python3
"""Soak: one worker and the orchestrator-listener, many tasks with random outcomes, random
kill -9 and SIGHUP, bounded time.

    cargo build --release
    tests/soak/soak.py [--tasks 100000] [--minutes 15] [--bin target/release/worker-watcher]
                       [--listener-bin target/release/orchestrator-listener]

A producer keeps a backlog queued until --tasks are submitted; a chaos loop kills the worker
with SIGKILL every 30-90 s (and restarts it at once, as systemd's Restart= would) and sends it
SIGHUP every 5-15 s. An orchestrator-listener follows the worker all along, and gets the same
treatment: kill -9 (and a restart at once) every 60-180 s, SIGHUP every 10-30 s. Then the chaos
stops, the last worker drains what is left, the listener catches up, and the checks run: every
task has exactly one final outcome (one result; a dead letter only beside a failed one) and the
outcome its kind asked for; nothing is left queued, in flight or half-written; RSS stays flat
and no fd leaks (/proc/PID/fd of an idle worker, at its start and at the end). Of the listener:
exactly one task_completed/task_failed event per result, saying what the result says, none of
a task twice; its state counted each result once; nothing but events in triggers/orchestrator/;
its RSS flat, its idle fds the same at its first start and at the end; it never exited but when
killed. Exits 1 on any failed check. Not part of `cargo test`: it runs for --minutes and more.
"""

import argparse, json, os, random, signal, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORKER = "soak"
# (word, share, expected status, expected reason). "fail" and "agent-error" fail the same way at
# every attempt: with the default REPEATED_FAILURE_LIMIT=2 the worker gives up after two attempts
# (reason repeated_failure) rather than spending all MAX_RETRIES.
KINDS = [
    ("ok", 0.78, "completed", None),
    ("flaky", 0.08, "completed", None),
    ("slow", 0.05, "completed", None),
    ("text", 0.02, "completed", None),
    ("fail", 0.03, "failed", "repeated_failure"),
    ("agent-error", 0.03, "failed", "repeated_failure"),
    ("invalid", 0.01, "failed", "invalid"),
]


TASK_EVENTS = ("task_completed", "task_failed")


def proc_stat(pid):
    """(RSS in KiB, open fds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None


def longest_life(samples):
    """(seconds, highest RSS in its first quarter, RSS at its end) of the longest-lived process
    among `samples` ((incarnation, seconds since its start, rss KiB, fds) each)."""
    longest = max({s[0] for s in samples}, key=lambda i: max(s[1] for s in samples if s[0] == i))
    life = [s for s in samples if s[0] == longest]
    early = [s[2] for s in life if s[1] <= life[-1][1] / 4] or [life[0][2]]
    return life[-1][1], max(early), life[-1][2]


def grew(before, after):
    """Whether RSS went from `before` to `after` KiB by more than allocator noise."""
    return after > 1.5 * before + 4096


class Listener:
    """The spool's orchestrator-listener, started, killed and reloaded like the worker."""

    def __init__(self, args, root, env):
        self.bin, self.root = args.listener_bin, root
        self.events = os.path.join(root, "triggers", "orchestrator")
        self.log_path = os.path.join(root, "listener.log")
        self.log = open(self.log_path, "ab")
        # LOG_LEVEL=INFO: it logs "ready" and "caught up", which the soak waits for, and is quiet
        # otherwise. Its stale limit is three times the heartbeat_interval each heartbeat states;
        # HEARTBEAT_INTERVAL is the worker's, as in a shared watcher.env.
        self.env = {
            "PATH": env["PATH"], "WORKERS": WORKER, "HEARTBEAT_INTERVAL": env["HEARTBEAT_INTERVAL"],
            "ENABLE_METRICS": "false", "LOG_LEVEL": "INFO", "LOG_FORMAT": "json",
        }
        self.proc = None
        self.incarnation = 0
        self.started_at = 0.0
        self.log_from = 0  # where this incarnation's lines start in the log
        self.samples = []  # (incarnation, seconds since its start, rss KiB, fds)
        self.kills = self.hups = 0
        self.exits = []  # exits nobody asked for

    def start(self):
        self.incarnation += 1
        self.log_from = os.fstat(self.log.fileno()).st_size
        self.proc = subprocess.Popen([self.bin, "--root", self.root], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        self.started_at = time.monotonic()
        self.wait_log("ready")

    def log_lines(self, since=0):
        with open(self.log_path, "rb") as f:
            f.seek(since)
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:  # a line being written
                    pass

    def wait_log(self, message, seconds=60):
        """Waits for this incarnation to log a line starting with `message`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(l.get("message", "").startswith(message) for l in self.log_lines(self.log_from)):
                return
            if self.proc.poll() is not None:
                sys.exit(f"FAIL: the listener exited with {self.proc.returncode} before it logged {message!r}")
            time.sleep(0.05)
        sys.exit(f"FAIL: the listener did not log {message!r} within {seconds} s")

    def alive(self):
        """Restarts a listener that exited on its own; the checks report it."""
        if self.proc.poll() is not None:
            self.exits.append(f"listener process {self.incarnation} exited with {self.proc.returncode}")
            self.start()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.kills += 1
        self.start()

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)
        self.hups += 1

    def sample(self):
        s = proc_stat(self.proc.pid)
        if s:
            self.samples.append((self.incarnation, time.monotonic() - self.started_at, *s))
        return s

    def idle_fds(self):
        """Open fds of the idle listener: the fewest of 5 readings 0.1 s apart (reading a
        heartbeat holds one more for a moment)."""
        readings = []
        for _ in range(5):
            readings.append(proc_stat(self.proc.pid)[1])
            time.sleep(0.1)
        return min(readings)

    def task_events(self):
        return sum(1 for n in os.listdir(self.events) if any(f"-{k}-" in n for k in TASK_EVENTS))

    def state(self):
        try:
            with open(os.path.join(self.root, "listener", "state.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def counts(self):
        return self.state().get("workers", {}).get(WORKER, {}).get("counts", {})

    def counted(self):
        c = self.counts()
        return c.get("completed", 0) + c.get("failed", 0) + c.get("unreadable", 0)

    def catch_up(self, n):
        """Waits until the listener has counted `n` results (its state is written after their
        events) and `n` task events are there, or neither figure moved for 30 s; returns the
        seconds waited."""
        t0 = time.monotonic()
        last, since = None, t0
        while time.monotonic() < t0 + 600:
            self.alive()
            figures = (self.counted(), self.task_events())
            if figures[0] >= n and figures[1] >= n:
                break
            if figures != last:
                last, since = figures, time.monotonic()
            elif time.monotonic() - since > 30:
                break
            self.sample()
            time.sleep(0.5)
        return time.monotonic() - t0

    def check(self, outcome, by_status, start, waited):
        """Checks the events against `outcome` (task id -> (status, reason) of each result) and
        the listener's own figures; returns (failures, report lines)."""
        fails, kinds, per_task, odd, mismatched = [], {}, {}, [], []
        for name in sorted(os.listdir(self.events)):
            if name.startswith(".") or not name.endswith(".json"):
                odd.append(name)
                continue
            with open(os.path.join(self.events, name)) as f:
                e = json.load(f)
            kinds[e["event"]] = kinds.get(e["event"], 0) + 1
            if e["event"] not in TASK_EVENTS:
                continue
            tid = e.get("task_id")
            per_task[tid] = per_task.get(tid, 0) + 1
            want = outcome.get(tid)
            kind = "task_completed" if want and want[0] == "completed" else "task_failed"
            if (want is None or e["event"] != kind or (e.get("status"), e.get("reason")) != want
                    or e.get("worker") != WORKER or e.get("id") != name[:-len(".json")]):
                mismatched.append(f"{name}: {e['event']} {e.get('worker')}/{tid} {e.get('status')}/"
                                  f"{e.get('reason')}, result says {want}")
        missing = sorted(t for t in outcome if t not in per_task)
        dups = sorted(t for t, c in per_task.items() if c > 1)
        if missing:
            fails.append(f"{len(missing)} results without a task event: {missing[:5]}")
        if dups:
            fails.append(f"{len(dups)} tasks with more than one event: {dups[:5]}")
        if mismatched:
            fails.append(f"{len(mismatched)} task events not saying what their result says: {mismatched[:5]}")
        if odd:
            fails.append(f"temp or other files in triggers/orchestrator: {odd[:5]}")
        st, c = self.state(), self.counts()
        counted = {"completed": c.get("completed", 0), "failed": c.get("failed", 0)}
        if counted != {k: by_status.get(k, 0) for k in counted} or c.get("unreadable", 0):
            fails.append(f"the listener counted {counted} and {c.get('unreadable', 0)} unreadable; "
                         f"the results are {by_status}")
        written = {k: v for k, v in st.get("events_written", {}).items() if k in TASK_EVENTS}
        on_disk = {k: kinds.get(k, 0) for k in written}
        if written != on_disk:
            fails.append(f"events written by the listener's count {written}, on disk {on_disk}")
        if self.exits:
            fails.append(f"the listener exited on its own: {self.exits}")
        if self.proc.poll() is not None:
            fails.append(f"the listener is not running at the end (exit {self.proc.returncode})")
        end = self.sample() or (0, 0)
        fds_end = self.idle_fds() if self.proc.poll() is None else None
        if fds_end != start[1]:
            fails.append(f"fd count of the idle listener: {start[1]} at its first start, {fds_end} at the end")
        life, early, late = longest_life(self.samples)
        if grew(early, late):
            fails.append(f"listener RSS grew: {early} KiB early, {late} KiB at the end of its longest life")
        if grew(start[0], end[0]):
            fails.append(f"listener RSS grew: {start[0]} KiB at its first start, {end[0]} KiB at the end")
        rss = [s[2] for s in self.samples]
        logged = list(self.log_lines())
        ready = [int(l.get("rebuild_ms", 0)) for l in logged if l.get("message") == "ready"]
        caught = [int(l.get("duration_ms", 0)) for l in logged if l.get("message", "").startswith("caught up")]
        warned = {}
        for l in logged:
            if str(l.get("level", "")).upper() in ("WARNING", "ERROR", "CRITICAL"):
                key = f"{l['level']}: {l.get('message')}"
                warned[key] = warned.get(key, 0) + 1
        n_events = sum(per_task.values())
        lines = [
            f"listener: {n_events} task events for {len(outcome)} results ({kinds.get('task_completed', 0)} "
            f"task_completed, {kinds.get('task_failed', 0)} task_failed); {len(dups)} tasks with a duplicate, "
            f"{len(missing)} missing, {len(mismatched)} not matching; other events "
            f"{ {k: v for k, v in kinds.items() if k not in TASK_EVENTS} }; caught up {waited:.1f} s after the drain",
            f"listener chaos: {self.kills} kill -9, {self.hups} SIGHUP, {self.incarnation} listener processes, "
            f"{len(self.exits)} exits on its own; READY after at most {max(ready)} ms of rebuild, "
            f"caught up at most {max(caught)} ms after start",
            f"listener state: counted {counted}, {c.get('unreadable', 0)} unreadable; events written {written}",
            f"listener RSS KiB: min {min(rss)}, max {max(rss)}; {start[0]} at its first start, {end[0]} at the end; "
            f"longest-lived listener ({life:.0f} s): {early} in its first quarter, {late} at its end",
            f"fds of the idle listener: {start[1]} at its first start, {fds_end} at the end; "
            f"max fds seen {max(s[3] for s in self.samples)}",
            f"listener log: {warned or 'no warning'}",
        ]
        return fails, lines


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
        self.listener = Listener(args, self.root, self.env)
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
        lst = self.listener
        next_lkill, next_lhup = time.monotonic() + random.uniform(60, 180), time.monotonic() + random.uniform(10, 30)
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
                lst.sample()
                next_sample = now + 5
            lst.alive()
            if now >= next_lkill:
                lst.kill()
                next_lkill = time.monotonic() + random.uniform(60, 180)
            elif now >= next_lhup:
                lst.hup()
                next_lhup = now + random.uniform(10, 30)
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
        print(f"submitted {n} tasks in {time.monotonic() - t0:.0f} s; {self.kills} kill -9, {self.hups} SIGHUP; "
              f"listener: {lst.kills} kill -9, {lst.hups} SIGHUP", flush=True)

    def drain(self):
        """Waits for every outcome with the last worker, then for it to be idle."""
        deadline = time.monotonic() + 1800
        while self.outcomes() < self.args.tasks:
            if time.monotonic() > deadline:
                sys.exit(f"FAIL: {self.outcomes()} outcomes of {self.args.tasks} after 30 min of draining")
            self.sample()
            self.listener.sample()
            self.listener.alive()
            time.sleep(1)
        hb = os.path.join(self.root, "heartbeats", f"{WORKER}.json")
        for _ in range(100):  # the heartbeat after the last outcome says idle
            with open(hb) as f:
                h = json.load(f)
            if h["active_tasks"] == 0 and h["queue_size"] == 0 and h["retry_waiting"] == 0:
                break
            time.sleep(0.2)

    def check(self, t_start, idle_fds_at_start, listener_start, listener_wait):
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
        by_status, attempts, outcome = {}, {}, {}
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
            outcome[tid] = (r["status"], r.get("reason"))
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
        lfails, llines = self.listener.check(outcome, by_status, listener_start, listener_wait)
        fails += lfails
        report = self.report(time.monotonic() - t_start, by_status, sum(runs.values()), reruns,
                             idle_fds_at_start, idle_fds_end, llines, fails)
        print(report)
        with open(os.path.join(self.root, "report.txt"), "w") as f:
            f.write(report + "\n")
        return fails

    def report(self, wall, by_status, runs, reruns, fds0, fds1, listener_lines, fails):
        last = [s for s in self.samples if s[0] == self.incarnation]
        life, early, late = longest_life(self.samples)
        rss_all = [s[2] for s in self.samples]
        if grew(early, late):
            fails.append(f"RSS grew: {early} KiB early, {late} KiB at the end of the longest life")
        lines = [
            f"soak: {self.args.tasks} tasks in {wall / 60:.1f} min ({self.args.tasks / wall:.0f} tasks/s overall), "
            f"{self.kills} kill -9, {self.hups} SIGHUP, {self.incarnation} worker processes",
            f"outcomes: {by_status}; agent runs {runs}; runs repeated after a kill -9: {reruns}",
            f"RSS KiB: min {min(rss_all)}, max {max(rss_all)}; longest-lived worker ({life:.0f} s): "
            f"{early} in its first quarter, {late} at its end; last worker at the end {last[-1][2]}",
            f"fds of an idle worker: {fds0} at start, {fds1} at the end; max fds seen {max(s[3] for s in self.samples)}",
            *listener_lines,
            f"root: {self.root}",
            "checks: " + ("all passed" if not fails else f"{len(fails)} FAILED:\n  " + "\n  ".join(fails[:30])),
        ]
        return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=100_000)
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--bin", default=os.path.join(REPO, "target", "release", "worker-watcher"))
    p.add_argument("--listener-bin", help="default: the orchestrator-listener beside --bin")
    p.add_argument("--dir", default="/var/tmp", help="where the spool is made (a disk, not tmpfs)")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args()
    random.seed(args.seed)
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"no worker binary at {args.bin}: cargo build --release (or --bin)")
    args.listener_bin = args.listener_bin or os.path.join(os.path.dirname(args.bin), "orchestrator-listener")
    if not os.access(args.listener_bin, os.X_OK):
        sys.exit(f"no listener binary at {args.listener_bin}: cargo build --release (or --listener-bin)")
    s = Soak(args)
    t_start = time.monotonic()
    try:
        s.start()
        fds_idle = proc_stat(s.proc.pid)[1]
        s.listener.start()
        s.listener.wait_log("caught up")
        listener_start = (s.listener.sample()[0], s.listener.idle_fds())
        s.chaos()
        s.drain()
        listener_wait = s.listener.catch_up(args.tasks)
        fails = s.check(t_start, fds_idle, listener_start, listener_wait)
    finally:
        for proc in (s.listener.proc, s.proc):  # the listener first: no worker_unhealthy at the end
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
