"""One subject in one fresh workspace, stopped and cleaned up whatever happens."""

import contextlib
import os
import signal

from . import procfs
from .workload import Workspace


def kill_agents(tools):
    """End leftover hang agents (they sleep an hour), by pid, found by exact path."""
    for pid in procfs.pids_with_exe(tools.hang_agent):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def running(subject_cls, tools, label, concurrency, agent_of, before_start=None, **start_kw):
    """Yield (subject, workspace) with the subject started and ready.

    agent_of(ws) gives the Agent for this workspace (its stamp folder is in it).
    before_start(ws) may fill the queue or the staging area first.
    """
    ws = Workspace(tools.workdir, f"{subject_cls.key}-{label}")
    subject = subject_cls(tools)
    try:
        if before_start:
            before_start(ws)
        subject.start(ws, concurrency, agent_of(ws), **start_kw)
        yield subject, ws
    finally:
        subject.stop()
        kill_agents(tools)
        # The workspace stays until the whole run ends (see __main__): on ext4
        # without a journal, every file created in the next minutes would pay
        # to skip the inodes freed here (ialloc's recently_deleted check).
