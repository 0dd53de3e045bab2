"""Retried attempts are not failures: one log line, their own counter, no traceback."""

from __future__ import annotations

import logging
from typing import Any

from redis.client import Pipeline
from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers, format_exc_info

from taskkit.worker.base import WorkerBase

log = logging.getLogger("taskkit.worker")

RETRIED_COUNT_FIELD = "taskkit_retried_job_count"
"""The worker hash's count of failed attempts that RQ retried (not failures of their job)."""


class Retries(WorkerBase):
    """An attempt RQ will retry is logged and counted as retried, not failed."""

    def _will_retry(self, job: Job) -> bool:
        """RQ's own rule in handle_job_failure (a job stopped by ``rq`` is not retried)."""
        return bool(job.should_retry) and self._stopped_job_id != job.id

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """RQ's error line with the traceback, for a job's final failure only.

        RQ writes it for every failed attempt; one that will be retried already has
        taskkit's line ("failed, retry 1/3 in 10s: ..."), so its traceback goes to DEBUG.
        Exception handlers (Sentry's, say) are called either way, as RQ does.
        """
        if not self._will_retry(job):
            super().handle_exception(job, *exc_info)
            return
        log.debug("job %s failed and is retried:\n%s", job.id, format_exc_info(exc_info))
        call_exception_handlers(self._exc_handlers, job, *exc_info)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's; an attempt that RQ retries is counted apart (see increment_failed_job_count)."""
        self._attempt_retried = self._will_retry(job)
        try:
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        finally:
            self._attempt_retried = False

    def increment_failed_job_count(self, pipeline: Pipeline | None = None) -> None:
        """RQ counts every failed attempt as a failed job; a retried one is counted in
        :data:`RETRIED_COUNT_FIELD` instead, in the same pipeline (no extra round trip)."""
        if not self._attempt_retried:
            super().increment_failed_job_count(pipeline)
            return
        (pipeline if pipeline is not None else self.connection).hincrby(
            self.key, RETRIED_COUNT_FIELD, 1
        )
