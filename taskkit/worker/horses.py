"""Work horses (``fork`` and ``spawn``): each dies with its worker, and costs it no memory.

An orphaned horse would go on running its job while another worker recovers the job as
abandoned and runs it again: two runs at once. RQ's fork also grows the worker's
environment on every job (glibc never frees a replaced variable).
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import signal
import struct
import sys
import threading
import time
from typing import Any

from rq import Queue
from rq.job import Job

from taskkit.worker.base import WorkerBase

log = logging.getLogger("taskkit.worker")

_PR_SET_PDEATHSIG = 1


# Loaded and looked up once, in the worker, so that each forked work horse only makes the
# call (ctypes builds a function pointer on first lookup: in every horse, were it done there).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


_PRCTL = _LIBC.prctl if _LIBC is not None else None


class Horses(WorkerBase):
    """RQ's forking worker's horses, bound to their worker's life."""

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """RQ's fork, with ``RQ_JOB_ID``/``RQ_WORKER_ID`` set in the horse only.

        RQ sets them in the worker too, for every job: glibc's ``setenv`` never frees
        the string it replaces, so a worker grew by ~100 bytes per job (~100 MB per
        million jobs). Nothing in the worker reads them.
        """
        child_pid = os.fork()
        if child_pid == 0:
            os.environ["RQ_WORKER_ID"] = self.name
            os.environ["RQ_JOB_ID"] = job.id
            os.setpgrp()
            self.main_work_horse(job, queue)
            os._exit(0)  # main_work_horse exits; as RQ, never return into the worker's loop
        self._horse_pid = child_pid
        self.note_horse_beat(job)
        self.procline(f"Forked {child_pid} at {time.time()}")  # type: ignore[no-untyped-call]

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """The work horse: die with the worker, then work the job as RQ does."""
        die_with_parent(self.pid)
        if not job.origin:
            job.origin = queue.name
        super().main_work_horse(job, queue)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """Say which signal killed the horse (SIGKILL: often the out-of-memory killer)."""
        if ret_val and os.WIFSIGNALED(ret_val):
            name = signal.Signals(os.WTERMSIG(ret_val)).name
            hint = " (the out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
            log.error(
                "the work horse of job %s was killed by %s%s; the job is %s",
                job.id,
                name,
                hint,
                "retried" if job.should_retry else "failed",
            )
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]


class _HorseOutcome:
    """A page of memory a forking worker shares with its work horses: "returned, in N ms".

    Writing the job's line in a freshly forked horse costs it about half a millisecond,
    nearly all copy-on-write page faults on the logging machinery's objects
    (benchmarks/profile_fork.py); the worker, whose pages are its own, writes the same
    line in microseconds. So the horse of a job that returned leaves its run time here and
    the worker writes the line after the horse exits, with no Redis round trip. A failure
    is still logged by the horse itself, with its error.
    """

    _RECORD = struct.Struct("=?d")  # the job returned; its run time in ms

    def __init__(self) -> None:
        self.worker_pid = os.getpid()
        self._page = mmap.mmap(-1, mmap.PAGESIZE)  # MAP_SHARED: forked children write here

    def clear(self) -> None:
        self._RECORD.pack_into(self._page, 0, False, 0.0)

    def put(self, elapsed: float) -> None:
        self._RECORD.pack_into(self._page, 0, True, elapsed)

    def take(self) -> float | None:
        returned, elapsed = self._RECORD.unpack_from(self._page, 0)
        return float(elapsed) if returned else None


# The page of the horse a TaskkitForkWorker of this process is running, if any: set before
# the fork, so the horse inherits it.
horse_outcome: _HorseOutcome | None = None


def die_with_parent(parent: int | None, signum: signal.Signals = signal.SIGKILL) -> None:
    """Make this process (a work horse, by default) get ``signum`` when its parent dies.

    An orphaned horse would go on running its job while another worker recovers the job
    as abandoned and runs it again: two runs at once. Linux delivers the signal when the
    parent dies (PR_SET_PDEATHSIG); elsewhere a thread watches the parent. A pool's
    worker asks for SIGTERM instead: it ends its job, deregisters and exits.
    """
    if _PRCTL is not None:
        if _PRCTL(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    elif parent is not None:
        threading.Thread(target=_watch_parent, args=(parent, signum), daemon=True).start()
    if parent is not None and os.getppid() != parent:  # the parent died before prctl
        os.kill(os.getpid(), signum)


def _watch_parent(parent: int, signum: signal.Signals) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signum)
