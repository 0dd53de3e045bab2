"""jobs.yaml's retry filters: ``discard_on`` fails at once, ``retry.on`` retries only those.

RQ retries any exception while the job has retries left. The job class decides per
attempt (:attr:`TaskkitJob.should_retry`, from the exception its callable raised); this
concern records why an attempt was not retried in the job's failure text, where
``taskkit failed show``, rq-dashboard and the job's result show it.
"""

from __future__ import annotations

from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry

from taskkit.worker.base import WorkerBase


class RetryPolicy(WorkerBase):
    """A failure that jobs.yaml says not to retry carries the reason in its failure text."""

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's; the failure text starts with the reason when a rule stopped the retries."""
        reason = getattr(job, "_taskkit_no_retry", None)
        if reason is not None:
            exc_string = f"{reason}\n{exc_string}"
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
