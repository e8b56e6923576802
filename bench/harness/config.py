"""Where the tools are (set by run.sh) and how much to measure (--quick or full)."""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Agent:
    """An agent command: the binary and the fixed arguments before a task id."""

    path: str
    args: tuple = ()


@dataclass(frozen=True)
class Tools:
    build: Path
    workdir: Path
    venv_python: str
    ww_bin: str
    ww_note: str
    tsp: str
    pueue: str
    pueued: str
    inotifywait: str
    xargs: str
    log_level: str

    @property
    def stamp_agent(self):
        return str(self.build / "stamp_agent")

    @property
    def noop_agent(self):
        return str(self.build / "noop_agent")

    @property
    def hang_agent(self):
        return str(self.build / "hang_agent")

    def ceiling(self, name):
        return str(self.build / name)

    @classmethod
    def from_env(cls):
        env = os.environ
        build = Path(env.get("BENCH_BUILD", BENCH_DIR / ".build"))
        return cls(
            build=build,
            workdir=Path(env.get("BENCH_WORKDIR", "/var/tmp/ww-bench")),
            venv_python=env.get("BENCH_VENV_PY", str(BENCH_DIR / ".venv/bin/python")),
            ww_bin=env.get("WW_BIN", ""),
            ww_note=env.get("WW_NOTE", ""),
            tsp=shutil.which("tsp") or shutil.which("ts") or "",
            pueue=shutil.which("pueue") or "",
            pueued=shutil.which("pueued") or "",
            inotifywait=shutil.which("inotifywait") or "",
            xargs=shutil.which("xargs") or "",
            log_level=env.get("BENCH_LOG_LEVEL", "WARNING"),
        )


@dataclass(frozen=True)
class Plan:
    """How many tasks and repetitions each measurement uses."""

    mode: str
    latency_tasks: int
    latency_runs: int
    latency_gap_s: float = 0.020
    latency_concurrency: int = 4
    throughput_sizes: tuple = (2000,)
    throughput_concurrency: tuple = (4,)
    throughput_runs: dict = field(default_factory=dict)
    run_timeout_cap_s: float = 300.0
    idle_seconds: int = 60
    idle_window_s: int = 10
    idle_concurrency: int = 3
    queued_tasks: int = 100_000
    queued_runs: int = 1
    durable_files: int = 500
    durable_runs: int = 3

    def runs_for(self, size):
        return self.throughput_runs.get(size, 3)

    def run_timeout(self, size):
        return min(self.run_timeout_cap_s, 30.0 + size / 20.0)


QUICK = Plan(mode="quick", latency_tasks=40, latency_runs=3,
             throughput_sizes=(2000,), throughput_concurrency=(4,),
             throughput_runs={2000: 3}, run_timeout_cap_s=30.0, queued_runs=1,
             durable_files=300, durable_runs=3)

FULL = Plan(mode="full", latency_tasks=200, latency_runs=5,
            throughput_sizes=(2000, 20000), throughput_concurrency=(1, 4, 16),
            throughput_runs={2000: 5, 20000: 3}, run_timeout_cap_s=240.0, queued_runs=3,
            durable_files=2000, durable_runs=5)
