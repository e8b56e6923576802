"""The systems under test, behind one small interface.

Every subject is started fresh for each run in its own Workspace, is fed the
same tasks and runs the same agent. "spool" subjects watch the queue folder
and are fed by rename(2); "client" subjects (task-spooler, pueue) have no
folder to watch and are fed by their own client command, one call per task.
"""

import os
import select
import shlex
import signal
import socket
import subprocess
import threading
import time

from . import procfs


class SubjectError(RuntimeError):
    """A subject could not be started or did not behave; the message says why."""


def base_env(**extra):
    """A small, clean environment: nothing of the harness's own leaks in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for_text(path, text, timeout, proc=None):
    """Poll a log file until it holds text; bounded by timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if text in path.read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.01)
    raise SubjectError(f"no '{text}' in {path.name} within {timeout}s: {tail(path)}")


def tail(path, lines=5):
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def run_client(argv, env, timeout=60.0):
    """Run a peer's client command to completion, as cheaply as Python can
    (posix_spawn, no pipes), so the harness's own cost is not charged to it."""
    null = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
    pid = os.posix_spawn(argv[0], [str(a) for a in argv], env, file_actions=null)
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SubjectError(f"{os.path.basename(argv[0])} {argv[1]} exited with "
                           f"{os.waitstatus_to_exitcode(status)}")


def stop_group(proc, grace=5.0):
    """SIGTERM the process group the process leads (or the process alone when it
    leads none), then SIGKILL after a grace."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Subject:
    key = ""
    label = ""
    kind = "spool"
    ceiling = False

    def __init__(self, tools):
        self.tools = tools
        self.procs = []
        self.ready_seconds = None

    def missing(self):
        """None when the subject can run here, else why it cannot."""
        return None

    def launch(self, cmd, ws, name, env, stdin=subprocess.DEVNULL, stdout=None):
        """Start one process in a session of its own, logging to logs/NAME.log."""
        log = open(ws.log(name), "ab")
        try:
            proc = subprocess.Popen([str(c) for c in cmd], stdin=stdin,
                                    stdout=log if stdout is None else stdout, stderr=log,
                                    env=env, cwd=ws.root, start_new_session=True)
        finally:
            log.close()
        self.procs.append(proc)
        return proc

    def pids(self):
        return [p.pid for p in self.procs if p.poll() is None]

    writes_results = False  # True: done = results/NAME/ID.json; else the agent's stamp line

    def submit(self, ws, tid):
        return ws.drop_one(tid)

    def drop_all(self, ws, ids, deadline):
        return ws.drop_staged(ids, deadline)

    def stop(self):
        for proc in self.procs:
            stop_group(proc)
        self.procs = []


class InotifyFloor(Subject):
    key, label, ceiling = "floor", "ceiling: minimal inotify loop (C)", True

    def start(self, ws, concurrency, agent):
        cmd = [self.tools.ceiling("inotify_floor"), ws.queue, concurrency, agent.path, *agent.args]
        proc = self.launch(cmd, ws, self.key, base_env())
        wait_for_text(ws.log(self.key), "ready", 10, proc)


class WorkerWatcher(Subject):
    key, label = "ww", "worker-watcher"

    def missing(self):
        if not self.tools.ww_bin or not os.access(self.tools.ww_bin, os.X_OK):
            return self.tools.ww_note or f"no executable at WW_BIN={self.tools.ww_bin!r}"
        return None

    writes_results = True

    def env(self, ws, concurrency, agent, notify):
        return base_env(CLAUDE_COMMAND=agent.path, CLAUDE_ARGS=shlex.join(agent.args),
                        MAX_CONCURRENT_TASKS=concurrency, TASK_TIMEOUT=3600,
                        HEARTBEAT_INTERVAL=10, LOG_LEVEL=self.tools.log_level,
                        ENABLE_METRICS="false", NOTIFY_SOCKET=notify)

    def start(self, ws, concurrency, agent, ready_timeout=15.0):
        """Start it with a NOTIFY_SOCKET of our own and time the READY=1 datagram.

        The socket stays bound and drained while the daemon runs, as systemd's
        does: a vanished socket would cost the daemon a failed send (and a log
        line) at every STATUS= change.
        """
        notify_path = ws.root / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(notify_path))
        cmd = [self.tools.ww_bin, ws.worker, "--root", ws.root, "--max-concurrent", concurrency]
        started = time.monotonic()
        proc = self.launch(cmd, ws, self.key, self.env(ws, concurrency, agent, notify_path))
        self.ready_seconds = self._await_ready(started, ready_timeout, proc, ws)
        self.draining = threading.Event()
        self.drainer = threading.Thread(target=self._drain, daemon=True)
        self.drainer.start()

    def _await_ready(self, started, timeout, proc, ws):
        end = started + timeout
        while (left := end - time.monotonic()) > 0:
            self.notify.settimeout(min(left, 0.2))
            try:
                datagram = self.notify.recv(4096).decode(errors="replace")
            except socket.timeout:
                if proc.poll() is not None:
                    raise SubjectError(f"exited with {proc.returncode}: {tail(ws.log(self.key))}")
                continue
            if "READY=1" in datagram.splitlines():
                return time.monotonic() - started
        raise SubjectError(f"no READY=1 within {timeout}s: {tail(ws.log(self.key))}")

    def _drain(self):
        self.notify.settimeout(0.2)
        while not self.draining.is_set():
            try:
                self.notify.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return

    def stop(self):
        super().stop()
        if getattr(self, "drainer", None):
            self.draining.set()
            self.drainer.join(timeout=2)
            self.drainer = None
        if getattr(self, "notify", None):
            self.notify.close()
            self.notify = None


class PythonRef(Subject):
    key, label = "pyref", "old Python design (watchdog, reference)"

    def missing(self):
        return None if os.access(self.tools.venv_python, os.X_OK) else "no venv python"

    writes_results = True

    def start(self, ws, concurrency, agent, heartbeat=10):
        from .config import BENCH_DIR
        script = BENCH_DIR / "python_ref" / "worker_watcher_ref.py"
        env = base_env(CLAUDE_COMMAND=agent.path, CLAUDE_ARGS=shlex.join(agent.args),
                       MAX_CONCURRENT_TASKS=concurrency, TASK_TIMEOUT=3600,
                       HEARTBEAT_INTERVAL=heartbeat, LOG_LEVEL=self.tools.log_level)
        cmd = [self.tools.venv_python, script, ws.worker, "--root", ws.root,
               "--max-concurrent", concurrency]
        proc = self.launch(cmd, ws, self.key, env)
        wait_for_text(ws.log(self.key), "ready", 30, proc)


class InotifywaitXargs(Subject):
    key, label = "xargs", "inotifywait -m | xargs -P"

    def missing(self):
        return None if self.tools.inotifywait and self.tools.xargs else "inotifywait not installed"

    def start(self, ws, concurrency, agent):
        watch = self.launch([self.tools.inotifywait, "-m", "-e", "moved_to", "--format", "%f",
                             ws.queue], ws, "inotifywait", base_env(), stdout=subprocess.PIPE)
        try:
            self.launch([self.tools.xargs, "-r", "-P", concurrency, "-n", "1", agent.path,
                         *agent.args], ws, "xargs", base_env(), stdin=watch.stdout,
                        stdout=subprocess.DEVNULL)
        finally:
            watch.stdout.close()
        wait_for_text(ws.log("inotifywait"), "Watches established", 10, watch)


class TaskSpooler(Subject):
    key, label, kind = "tsp", "task-spooler (tsp)", "client"

    def missing(self):
        return None if self.tools.tsp else "task-spooler not installed"

    def start(self, ws, concurrency, agent):
        self.agent = agent
        self.socket = str(ws.root / "tsp.sock")
        self.env = base_env(TS_SOCKET=self.socket, TMPDIR=ws.root, TS_SLOTS=concurrency)
        subprocess.run([self.tools.tsp, "-S", str(concurrency)], env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        exe = os.path.basename(os.path.realpath(self.tools.tsp))
        found = procfs.pids_with_env(exe, "TS_SOCKET", self.socket)
        if len(found) != 1:
            raise SubjectError(f"expected one tsp server, found {found}")
        self.server = found[0]

    def pids(self):
        return [self.server] if os.path.exists(f"/proc/{self.server}") else []

    def submit(self, ws, tid):
        stamp = time.time_ns()
        run_client([self.tools.tsp, "-n", self.agent.path, *self.agent.args, tid], self.env)
        return stamp

    def drop_all(self, ws, ids, deadline):
        for count, tid in enumerate(ids):
            if time.monotonic() > deadline:
                return count
            self.submit(ws, tid)
        return len(ids)

    def stop(self):
        subprocess.run([self.tools.tsp, "-K"], env=self.env, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        exe = os.path.basename(os.path.realpath(self.tools.tsp))
        for pid in procfs.pids_with_env(exe, "TS_SOCKET", self.socket):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Pueue(Subject):
    key, label, kind = "pueue", "pueue", "client"

    def missing(self):
        return None if self.tools.pueue and self.tools.pueued else "pueue not installed"

    def start(self, ws, concurrency, agent):
        self.agent = agent
        home = ws.root / "pueue"
        home.mkdir()
        self.config = home / "pueue.yml"
        self.config.write_text(
            "shared:\n"
            f"  pueue_directory: {home}\n"
            f"  runtime_directory: {home}\n"
            "  use_unix_socket: true\n"
            f"  unix_socket_path: {home}/pueue.sock\n"
            "daemon:\n"
            "  callback: null\n")
        self.env = base_env()
        proc = self.launch([self.tools.pueued, "-c", self.config], ws, self.key, self.env)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self._client("parallel", str(concurrency), check=False).returncode == 0:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SubjectError(f"pueued did not answer: {tail(ws.log(self.key))}")

    def _client(self, *args, check=True):
        return subprocess.run([self.tools.pueue, "-c", str(self.config), *args], env=self.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=60, check=check)

    def submit(self, ws, tid):
        stamp = time.time_ns()
        run_client([self.tools.pueue, "-c", self.config, "add", "--", self.agent.path,
                    *self.agent.args, tid], self.env)
        return stamp

    drop_all = TaskSpooler.drop_all


ALL = (InotifyFloor, WorkerWatcher, PythonRef, InotifywaitXargs, TaskSpooler, Pueue)
