"""Rate limits (``rate_limit:``): a job over its key's limit is delayed, and the worker
takes the next one.

RQ has no rate limit per window (its RateLimit counts jobs at once). Here a job that the
worker has taken is checked against its key's sliding window (:class:`taskkit.limits.
RateLimiter`, one Lua script) before it starts: either its start is counted and it runs,
or it goes from the worker's hands to its queue's scheduled registry, due when the
window has room, and RQ's scheduler (which every ``taskkit run-worker`` runs) puts it
back on its queue then. The job is never failed. Whether a job has a rate limit is
decided from jobs.yaml in this process, so a job without one costs no Redis command.
"""

from __future__ import annotations

import logging
import time

from rq import Queue
from rq.job import Job

from taskkit.limits import RateLimiter, rate_limiter
from taskkit.worker.base import WorkerBase
from taskkit.worker.job import TaskkitJob, _declared_job

log = logging.getLogger("taskkit.worker")


class RateLimits(WorkerBase):
    """A worker that starts a job only when its rate limit's window has room."""

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's wait for a job; a job over its rate limit is delayed and the wait goes on."""
        deadline = None if max_idle_time is None else time.monotonic() + max_idle_time
        while True:
            left = None if deadline is None else max(1, int(deadline - time.monotonic()))
            result = super().dequeue_job_and_maintain_ttl(timeout, left)
            if result is None or not self._delayed(*result):
                return result
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _delayed(self, job: Job, queue: Queue) -> bool:
        """Whether ``job`` was over its rate limit, and so sent to wait."""
        limiter = _limiter_of(job)
        if limiter is None:
            return False
        due = limiter.start_or_delay(self.connection, job, queue)
        if due is None:
            return False
        self._job_in_hand = False
        log.info(
            "job %s: rate limit %r (%d per %gs) reached; delayed until %.3f",
            job.id,
            limiter.key,
            limiter.limit,
            limiter.per,
            due,
        )
        return True


def _limiter_of(job: Job) -> RateLimiter | None:
    """The rate limit of a declared job's call; None for any other job (no Redis read)."""
    if not isinstance(job, TaskkitJob):
        return None
    registry = TaskkitJob.worker_registry()
    if not registry.has_rate_limits:
        return None  # jobs.yaml has no rate limit: the job's data is not even decoded
    try:
        declared, _ = _declared_job(registry, job)
        if declared is None or declared.settings.rate_limit is None:
            return None
        return rate_limiter(declared, tuple(job.args), job.kwargs)
    except Exception:  # data that cannot be read, arguments that do not fit: the job class
        return None  # refuses or fails the job when it runs, and says why
