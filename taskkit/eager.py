"""Eager mode: enqueue runs the job at once, in the caller's process and context.

For tests and local scripts: the same argument checks and a serializer round trip of
the arguments as a real enqueue (so a tuple arrives as a list, as it would in a worker),
then the job runs inside the caller's active app context (the test's app and database)
when there is one. No Redis is needed or touched. An ``async def`` job is run to its
end (in a helper thread when the caller is itself inside a running event loop), and a
teardown handler that raises is logged without changing the job's outcome, as in a worker.
"""

from __future__ import annotations

import json
import logging
import pickle
import traceback
import uuid
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from taskkit.logs import escape_controls
from taskkit.progress import current_job

if TYPE_CHECKING:
    from taskkit.registry import DeclaredJob, Registry

log = logging.getLogger("taskkit.eager")

# A client that is never used: an eager job lives in memory only. Creating it sends nothing.
_UNCONNECTED = redis.Redis(host="eager-mode.invalid")


class EagerJob(Job):
    """An :class:`rq.job.Job` that already ran; it lives in memory, never in Redis.

    It carries what a real enqueue would (queue, timeout, TTLs, retry, description, the
    job's name in ``meta``) and answers ``get_status()``, ``return_value()``, ``result``
    and ``exc_info`` without Redis. Methods that read or write Redis do not work on it.
    """

    _status: JobStatus
    _exc_info: str | None = None

    def get_status(self, refresh: bool = True) -> JobStatus:
        """FINISHED, or FAILED when the job raised (and exceptions were not propagated)."""
        return self._status

    def return_value(self, refresh: bool = False) -> Any:
        """What the job returned."""
        return self._result

    @property
    def result(self) -> Any:
        """What the job returned."""
        return self._result

    @property
    def exc_info(self) -> str | None:
        """The traceback text when the job failed."""
        return self._exc_info


EAGER_JOBS_KEPT = 1000
"""How many of its eager jobs a registry keeps for :meth:`Registry.fetch`."""


class EagerJobs:
    """The jobs a registry ran eagerly lately, by id, for ``fetch`` (oldest dropped first)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self.holders: dict[str, Job] = {}
        """Unique key -> the eager job holding it (waiting for a commit, or running)."""

    def remember(self, job: Job) -> None:
        """Keep ``job``; forget the oldest past :data:`EAGER_JOBS_KEPT`."""
        self._jobs[job.id] = job
        while len(self._jobs) > EAGER_JOBS_KEPT:
            del self._jobs[next(iter(self._jobs))]

    def get(self, job_id: str) -> Job | None:
        """The job ``job_id`` if this process ran it eagerly lately."""
        return self._jobs.get(job_id)

    def run(
        self,
        registry: Registry,
        declared: DeclaredJob,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        job: EagerJob | None = None,
    ) -> Job:
        """Run a declared job now (see :func:`run_eagerly`), holding its unique key while
        it runs if it says ``while: queued_or_running``; remember it for ``fetch``."""
        key = declared.flow.unique_key(args, kwargs)
        unique = declared.settings.unique
        if job is None:
            job = new_job(declared, args, kwargs)
        if key is not None and unique is not None and unique.while_ == "queued_or_running":
            self.holders[key] = job
        elif key is not None:
            self.holders.pop(key, None)  # it no longer waits
        try:
            ran = run_eagerly(registry, declared, args, kwargs, job=job)
        finally:
            if key is not None and self.holders.get(key) is job:
                del self.holders[key]
        self.remember(ran)
        return ran

    def holder(
        self, declared: DeclaredJob, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Job | None:
        """The job holding this call's unique key: one waiting for a commit or, with
        ``while: queued_or_running``, one running (a job that enqueues itself)."""
        if not self.holders or declared.settings.unique is None:
            return None
        key = declared.flow.unique_key(args, kwargs)
        return None if key is None else self.holders.get(key)


def round_trip(
    serializer: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments as a worker would receive them after ``serializer`` carried them."""
    if serializer == "json":
        # What the worker would see: tuples become lists, dict keys become strings.
        args_list, kwargs = json.loads(json.dumps([list(args), kwargs]))
        return tuple(args_list), kwargs
    # Pickle keeps types but not identity: the job gets copies, as a worker would.
    copied: tuple[tuple[Any, ...], dict[str, Any]] = pickle.loads(pickle.dumps((args, kwargs)))
    return copied


def run_eagerly(
    registry: Registry,
    declared: DeclaredJob,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    propagate: bool = True,
    job: EagerJob | None = None,
) -> EagerJob:
    """Run ``declared`` now, as a worker would, and return the finished job.

    With ``propagate`` (the default) the job's exception reaches the caller, so a
    failing job fails the test that enqueued it. ``job`` is the :func:`new_job` to run,
    if one was handed out before (a job enqueued after_commit).
    """
    args, kwargs = round_trip(registry.config.serializer, args, kwargs)
    if job is None:
        job = new_job(declared, args, kwargs)
    else:  # made when it was enqueued (after_commit): it runs with the arguments sent
        job.args, job.kwargs = args, kwargs
    job.started_at = now()
    try:
        with current_job(job):  # get_current_job() and taskkit.progress() see it, as in a worker
            job._result = registry.call(
                declared, args, kwargs, partial(_log_teardown_error, declared, job.id)
            )
    except Exception:
        job.ended_at = now()
        job._status = JobStatus.FAILED
        job._exc_info = traceback.format_exc()
        if propagate:
            raise
        return job
    job.ended_at = now()
    job._status = JobStatus.FINISHED
    return job


def _log_teardown_error(declared: DeclaredJob, job_id: str, error: Exception) -> None:
    log.error(
        "%s id=%s (eager): a teardown handler raised %s after the job ended; the job keeps "
        "its outcome",
        declared.name,
        job_id,
        escape_controls(f"{type(error).__name__}: {error}"),
        exc_info=error,
    )


def new_job(declared: DeclaredJob, args: tuple[Any, ...], kwargs: dict[str, Any]) -> EagerJob:
    """An eager job not run yet (status queued): what a real enqueue would write."""
    settings = declared.settings
    job = EagerJob(str(uuid.uuid4()), connection=_UNCONNECTED, serializer=JSONSerializer)
    job.func_name = settings.rq_func_name
    job.args, job.kwargs = args, kwargs
    job.origin = settings.queue
    job.description = settings.description
    job.timeout = settings.timeout
    job.result_ttl = settings.result_ttl
    job.failure_ttl = settings.failure_ttl
    retry = declared.retry
    if retry is not None:
        job.retries_left = retry.max
        job.retry_intervals = retry.intervals
    job.meta = {"taskkit_job": declared.name}
    job.enqueued_at = now()
    job._status = JobStatus.QUEUED
    return job


__all__ = ["EagerJob", "new_job", "round_trip", "run_eagerly"]
