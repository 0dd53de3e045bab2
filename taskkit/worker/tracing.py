"""Traces: each job runs in a consumer span that continues the trace its enqueue started.

The spans themselves are made by :mod:`taskkit.tracing`; without OpenTelemetry installed
the per-job cost is one check of a module attribute.
"""

from __future__ import annotations

from rq import Queue
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry

from taskkit import tracing
from taskkit.worker.base import WorkerBase


class Tracing(WorkerBase):
    """Runs each job in a consumer span that continues the trace its enqueue started."""

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """RQ's, inside a ``process JOB`` span (when tracing is on)."""
        tracer = tracing.get_tracer() if tracing.enabled() else None
        if tracer is None:
            return bool(super().perform_job(job, queue, execution))
        with tracing.consumer_span(tracer, job):
            return bool(super().perform_job(job, queue, execution))

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: StartedJobRegistry | None = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """RQ's; in a traced attempt, the error is recorded and a retry carries its context.

        The context is put in the job's meta, which RQ's retry writes in the same
        transaction as the failure.
        """
        if tracing.enabled():
            tracing.record_failure(job)
        super().handle_job_failure(
            job,
            queue,
            started_job_registry=started_job_registry,
            exc_string=exc_string,
            execution=execution,
        )
