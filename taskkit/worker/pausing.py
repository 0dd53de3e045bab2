"""Paused queues (``taskkit queues pause``): a worker takes no job from them until resumed.

The paused set lives in Redis (:mod:`taskkit.queues`) and is read at most once a second,
never once per job. RQ waits on one list of queues until a job comes; here it waits one
``timeout`` (a second while some of this worker's queues are paused, so that a resume is
seen) and then looks at the paused set again; while all are paused, it waits without
taking anything. A job taken from a queue paused during a wait goes back to the front of
its queue.
"""

from __future__ import annotations

import logging
import math
import time

from rq import Queue
from rq.job import Job

from taskkit.queues import PausedQueues
from taskkit.worker.base import WorkerBase

log = logging.getLogger("taskkit.worker")


class Pausing(WorkerBase):
    """A worker that skips paused queues, without a busy loop or a round trip per job."""

    _paused: PausedQueues | None = None
    _paused_here: tuple[str, ...] = ()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's wait for a job, taken only from queues that are not paused."""
        deadline = None if max_idle_time is None else time.monotonic() + max_idle_time
        while True:
            open_queues, paused = self._split_paused()
            if not open_queues:
                if timeout is None:
                    return None  # a burst worker: nothing it may take is left
                self._wait_while_paused(paused)
                result = None
            else:
                wait = None if timeout is None else min(timeout, 1) if paused else timeout
                result = self._dequeue_from(open_queues, wait, deadline)
            if result is not None and not self._put_back_if_paused(*result):
                return result
            if timeout is None and result is None:
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _paused_queues(self) -> PausedQueues:
        if self._paused is None:
            self._paused = PausedQueues()
        return self._paused

    def _split_paused(self) -> tuple[list[Queue], list[str]]:
        paused_queues = self._paused_queues()
        paused_queues.refresh(self.connection)
        open_names, paused = paused_queues.split(q.name for q in self._ordered_queues)
        if tuple(paused) != self._paused_here:
            self._paused_here = tuple(paused)
            log.info(
                "worker %s: %s; taking jobs from %s",
                self.name,
                f"paused queues: {', '.join(paused)}" if paused else "no queue is paused",
                ", ".join(open_names) or "none until one is resumed",
            )
        return [q for q in self._ordered_queues if q.name in open_names], paused

    def _dequeue_from(
        self, queues: list[Queue], wait: int | None, deadline: float | None
    ) -> tuple[Job, Queue] | None:
        """RQ's dequeue on ``queues`` only, for one wait of ``wait`` seconds at most."""
        everything = self._ordered_queues
        self._ordered_queues = queues
        left = _left(deadline)
        try:
            # RQ's idle limit is the only way out of its wait loop after one wait.
            limit = left if wait is None else wait if left is None else min(wait, left)
            return super().dequeue_job_and_maintain_ttl(wait, limit)
        finally:
            self._ordered_queues = everything

    def _wait_while_paused(self, paused: list[str]) -> None:
        """Every queue of this worker is paused: stay registered and idle, then look again."""
        self.set_state("idle")
        self.procline(f"Paused: {','.join(paused)}")  # type: ignore[no-untyped-call]
        self.heartbeat()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
        time.sleep(self._paused_queues().every)  # a signal ends it: RQ raises StopRequested

    def _put_back_if_paused(self, job: Job, queue: Queue) -> bool:
        """Put ``job`` back at the front of ``queue`` if that queue is paused by now."""
        if queue.name not in self._paused_queues().refresh(self.connection):
            return False
        with self.connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue.key, 1, job.id)
            pipe.lpush(queue.key, job.id)
            pipe.execute()
        self._job_in_hand = False
        log.info("queue %s is paused: job %s put back, untouched", queue.name, job.id)
        return True


def _left(deadline: float | None) -> int | None:
    """Whole seconds (at least 1) until ``deadline``, for RQ's ``max_idle_time``."""
    return None if deadline is None else max(1, math.ceil(deadline - time.monotonic()))
