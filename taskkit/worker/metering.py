"""Metrics counted by the workers: each job's outcome and run time, at no round trip.

RQ's registries cannot give ``taskkit_jobs_total`` and ``taskkit_job_duration_seconds``
(finished and failed jobs leave them after their TTL, and retries leave no trace), so
each worker adds its job's outcome and run time to one Redis hash (see
:mod:`taskkit.metrics`) inside the MULTI/EXEC RQ already sends when a job ends: two
commands more, no round trip more.
"""

from __future__ import annotations

from typing import Any

from redis.client import Pipeline
from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry

from taskkit.metrics import count_job, job_label, run_seconds
from taskkit.worker.base import WorkerBase


class Metering(WorkerBase):
    """Counts each job's outcome and run time in the transaction RQ sends when it ends.

    RQ calls ``increment_successful_job_count`` or ``increment_failed_job_count`` exactly
    once per ended job, with the pipeline of that job's outcome; the ``handle_job_*``
    methods around them say which job it is and how it ended.
    """

    _metrics_ending: tuple[Job, str] | None = None

    def handle_job_success(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry,
        execution: Execution,
    ) -> None:
        """RQ's; the job counts as finished."""
        self._metrics_ending = (job, "finished")
        try:
            super().handle_job_success(job, queue, started_job_registry, execution)
        finally:
            self._metrics_ending = None

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's; the job counts as refused, retried or failed (RQ's own retry rule)."""
        stopped = getattr(self, "_stopped_job_id", None) == job.id
        outcome = "retried" if job.should_retry and not stopped else "failed"
        if getattr(job, "_taskkit_refusal", None) is not None:
            outcome = "refused"
        self._metrics_ending = (job, outcome)
        try:
            super().handle_job_failure(
                job,
                queue,
                started_job_registry=started_job_registry,
                exc_string=exc_string,
                execution=execution,
            )
        finally:
            self._metrics_ending = None

    def handle_job_retry(
        self,
        job: Job,
        queue: Queue,
        retry: Any,
        started_job_registry: StartedJobRegistry,
        execution: Execution,
    ) -> None:
        """RQ's, for a job that returned ``rq.Retry``: retried, or failed past its max."""
        exhausted = bool(job.number_of_retries and job.number_of_retries >= retry.max)
        self._metrics_ending = (job, "failed" if exhausted else "retried")
        try:
            super().handle_job_retry(job, queue, retry, started_job_registry, execution)
        finally:
            self._metrics_ending = None

    def increment_successful_job_count(self, pipeline: Pipeline | None = None) -> None:
        """RQ's, plus the job's count and run time in the same pipeline."""
        super().increment_successful_job_count(pipeline)
        self._count_ending(pipeline)

    def increment_failed_job_count(self, pipeline: Pipeline | None = None) -> None:
        """RQ's, plus the job's count and run time in the same pipeline."""
        super().increment_failed_job_count(pipeline)
        self._count_ending(pipeline)

    def _count_ending(self, pipeline: Pipeline | None) -> None:
        ending = self._metrics_ending
        if ending is None or pipeline is None:
            return
        job, outcome = ending
        count_job(pipeline, job_label(job), outcome, run_seconds(job, outcome))
