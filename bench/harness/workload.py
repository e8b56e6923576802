"""Task files: one fresh ROOT per run, staging, drops into the queue, completion polling."""

import json
import os
import tempfile
import time
from pathlib import Path


def task_ids(count):
    return [f"t{i:06d}" for i in range(1, count + 1)]


def task_body(task_id):
    return json.dumps({"task_id": task_id, "description": "bench no-op"}).encode()


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class Workspace:
    """One fresh ROOT in the worker-watcher layout, plus the bench's own folders.

    stamps.log  one line per agent run, "ID NS" (start time; written at its end)
    staging/ tasks written before the clock starts, renamed into the queue at once
    logs/    each daemon's stdout and stderr
    """

    def __init__(self, base, label, worker="bench"):
        Path(base).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
        self.worker = worker
        self.queue = self.root / "tasks" / worker
        self.results = self.root / "results" / worker
        self.heartbeats = self.root / "heartbeats"
        self.stamp_log = self.root / "stamps.log"
        self.staging = self.root / "staging"
        self.logs = self.root / "logs"
        for folder in (self.queue, self.results, self.staging, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.stamp_log.touch()

    def stage(self, ids):
        for tid in ids:
            write_file(self.staging / f"{tid}.json", task_body(tid))

    def fill_queue(self, ids):
        """Write tasks straight into the queue (a backlog present before start-up)."""
        for tid in ids:
            write_file(self.queue / f"{tid}.json", task_body(tid))

    def drop_staged(self, ids, deadline):
        """Rename staged tasks into the queue as fast as possible; returns how many."""
        for count, tid in enumerate(ids):
            if count % 1000 == 0 and time.monotonic() > deadline:
                return count
            os.rename(self.staging / f"{tid}.json", self.queue / f"{tid}.json")
        return len(ids)

    def drop_one(self, tid):
        """The producer protocol: write a dot-temp file, then rename it into the queue.

        Returns CLOCK_REALTIME (ns) taken just before the rename.
        """
        temp = self.queue / f".{tid}.json.tmp"
        write_file(temp, task_body(tid))
        stamp = time.time_ns()
        os.rename(temp, self.queue / f"{tid}.json")
        return stamp

    def log(self, name):
        return self.logs / f"{name}.log"



STALL_S = 20.0  # no progress for this long: the rest is lost, stop waiting


def wait_all(paths, timeout, interval=0.005):
    """Poll until every path exists; returns (done, monotonic time when all existed or None).

    A cursor walks the list in arrival order and only ever moves over files that
    exist, so a poll costs a stat or two, not a directory listing; runners that
    finish out of order only hold the cursor back until the stragglers appear.
    """
    end = time.monotonic() + timeout
    cursor, moved = 0, time.monotonic()
    while True:
        before = cursor
        while cursor < len(paths) and os.path.exists(paths[cursor]):
            cursor += 1
        now = time.monotonic()
        if cursor == len(paths):
            return cursor, now
        if cursor != before:
            moved = now
        if now > end or now - moved > STALL_S:
            return cursor + sum(os.path.exists(p) for p in paths[cursor:]), None
        time.sleep(interval)


def wait_stamps(log_path, count, timeout, interval=0.005):
    """Poll the stamp log until it holds count lines; same return as wait_all.

    Reads only what was appended since the last poll.
    """
    end = time.monotonic() + timeout
    lines, moved = 0, time.monotonic()
    with open(log_path, "rb") as log:
        while True:
            new = log.read().count(b"\n")
            lines += new
            now = time.monotonic()
            if lines >= count:
                return lines, now
            if new:
                moved = now
            if now > end or now - moved > STALL_S:
                return lines, None
            time.sleep(interval)


def read_stamps(log_path):
    """Start times (ns) the stamp agent wrote, by task id (the first, if repeated)."""
    found = {}
    for line in Path(log_path).read_text().splitlines():
        tid, _, ns = line.partition(" ")
        if ns.isdigit():
            found.setdefault(tid, int(ns))
    return found
