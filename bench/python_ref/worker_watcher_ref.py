#!/usr/bin/env python3
"""A small, faithful reference of the old Python worker_watcher, for benchmarks.

It is here to be measured beside worker-watcher, not to be run in production.

Kept from the old design, because each costs time or wake-ups:
- a watchdog ``Observer`` on ``tasks/NAME`` (its own threads, 1 s timeouts);
- MAX_CONCURRENT_TASKS worker threads taking paths from a queue with a 1 s poll;
- per task: a ``.lock`` file and flock, a trigger file, one subprocess with the
  description on stdin and a timeout, the result written to a temp file and
  moved into place *without fsync*, then the task file removed;
- a heartbeat thread rewriting ``heartbeats/NAME.json`` every HEARTBEAT_INTERVAL;
- a main thread that wakes every second to check for shutdown.

Left out: retries, circuit breaker, dead letters, metrics, start-up backlog
scan (the old design had none). One deviation: the old handler listened to
``on_created`` only, so a task renamed in from a dot-temp file in the same
folder (the producer protocol) was never seen; ``on_moved`` is handled too.

Usage: worker_watcher_ref.py NAME --root DIR [--max-concurrent N]
Environment: CLAUDE_COMMAND, CLAUDE_ARGS, MAX_CONCURRENT_TASKS, TASK_TIMEOUT,
HEARTBEAT_INTERVAL, LOG_LEVEL. Prints "ready" on stdout once watching.
"""

import argparse
import fcntl
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


class Config:
    """The old design's variables, read from the environment and the CLI."""

    def __init__(self, args):
        self.worker = args.name
        self.root = Path(args.root)
        self.concurrency = args.max_concurrent or int(os.environ.get("MAX_CONCURRENT_TASKS", "3"))
        self.timeout = float(os.environ.get("TASK_TIMEOUT", "600"))
        self.heartbeat = float(os.environ.get("HEARTBEAT_INTERVAL", "10"))
        self.command = [os.environ.get("CLAUDE_COMMAND", "claude")]
        self.command += shlex.split(os.environ.get("CLAUDE_ARGS", "-p --output-format json"))
        self.log_level = LEVELS.get(os.environ.get("LOG_LEVEL", "INFO").upper(), 20)
        self.dirs = {k: self.root / k / self.worker for k in ("tasks", "triggers", "results")}
        self.dirs["heartbeats"] = self.root / "heartbeats"


def log(cfg, level, message, **fields):
    if LEVELS[level] >= cfg.log_level:
        entry = {"timestamp": datetime.now(timezone.utc).isoformat(), "level": level,
                 "worker": cfg.worker, "message": message, **fields}
        print(json.dumps(entry), file=sys.stderr, flush=True)


class Handler(FileSystemEventHandler):
    """Turns watchdog events into queued task paths."""

    def __init__(self, watcher):
        self.watcher = watcher

    def on_created(self, event):
        self.watcher.enqueue(event.src_path)

    def on_moved(self, event):
        self.watcher.enqueue(event.dest_path)


class Watcher:
    def __init__(self, cfg):
        self.cfg = cfg
        self.queue = queue.Queue()
        self.stop = threading.Event()
        self.active = 0
        self.counts = {"processed": 0, "failed": 0}
        self.lock = threading.Lock()
        self.started = time.time()

    def enqueue(self, src):
        path = Path(os.fsdecode(src))
        if path.name.startswith(".") or not path.name.endswith(".json"):
            return
        if path.exists():
            self.queue.put(path)

    def worker_loop(self):
        while not self.stop.is_set():
            try:
                path = self.queue.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                self.process(path)
            except Exception as err:  # the old design logged and went on
                log(self.cfg, "ERROR", "Task processing error", path=str(path), error=str(err))

    def process(self, path):
        lock_path = path.with_suffix(".json.lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        try:
            if path.exists():
                self.run_task(path, json.loads(path.read_text()))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            lock_path.unlink(missing_ok=True)

    def run_task(self, path, task):
        task_id, cfg = task["task_id"], self.cfg
        trigger = {"task_id": task_id, "worker": cfg.worker, "status": "received",
                   "timestamp": datetime.now(timezone.utc).isoformat()}
        (cfg.dirs["triggers"] / f"{task_id}.trigger").write_text(json.dumps(trigger, indent=2))
        with self.lock:
            self.active += 1
        start = time.time()
        code, out, err = self.run_agent(task_id, task["description"])
        with self.lock:
            self.active -= 1
            self.counts["processed" if code == 0 else "failed"] += 1
        result = {"task_id": task_id, "worker": cfg.worker,
                  "status": "completed" if code == 0 else "failed", "exit_code": code,
                  "stdout": out, "stderr": err, "duration_seconds": time.time() - start,
                  "timestamp": datetime.now(timezone.utc).isoformat()}
        final = cfg.dirs["results"] / f"{task_id}.json"
        temp = final.with_suffix(".tmp")
        temp.write_text(json.dumps(result, indent=2))  # no fsync, as before
        shutil.move(str(temp), str(final))
        path.unlink(missing_ok=True)
        log(cfg, "INFO", "Task completed", task_id=task_id, status=result["status"])

    def run_agent(self, task_id, description):
        env = dict(os.environ, WATCHER_TASK_ID=task_id)
        try:
            proc = subprocess.run(self.cfg.command, input=description.encode(), env=env,
                                  capture_output=True, timeout=self.cfg.timeout,
                                  cwd=self.cfg.root)
            return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            return 124, "", f"Task timed out after {self.cfg.timeout}s"
        except OSError as err:
            return 1, "", str(err)

    def heartbeat_loop(self):
        target = self.cfg.dirs["heartbeats"] / f"{self.cfg.worker}.json"
        while not self.stop.is_set():
            beat = {"worker": self.cfg.worker, "pid": os.getpid(), "timestamp": time.time(),
                    "uptime_seconds": time.time() - self.started, "status": "healthy",
                    "queue_size": self.queue.qsize(), "active_tasks": self.active,
                    "stats": dict(self.counts)}
            temp = target.with_suffix(".tmp")
            temp.write_text(json.dumps(beat, indent=2))
            shutil.move(str(temp), str(target))
            self.stop.wait(self.cfg.heartbeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--root", required=True)
    parser.add_argument("--max-concurrent", type=int)
    cfg = Config(parser.parse_args())
    for folder in cfg.dirs.values():
        folder.mkdir(parents=True, exist_ok=True)

    watcher = Watcher(cfg)
    shutdown = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: shutdown.set())
    observer = Observer()
    observer.schedule(Handler(watcher), str(cfg.dirs["tasks"]), recursive=False)
    observer.start()
    threads = [threading.Thread(target=watcher.worker_loop, daemon=True)
               for _ in range(cfg.concurrency)]
    threads.append(threading.Thread(target=watcher.heartbeat_loop, daemon=True))
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    while not shutdown.is_set():  # the old main loop: wake every second
        time.sleep(1)
    observer.stop()
    observer.join()
    watcher.stop.set()
    for thread in threads:
        thread.join(timeout=cfg.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
