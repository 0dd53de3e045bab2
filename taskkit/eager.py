"""Eager mode: enqueue runs the job at once, in the caller's process and context.

For tests and local scripts: the same argument checks and a JSON round trip of the
arguments as a real enqueue, then the job runs inside the caller's active app context
(the test's app and database) when there is one. No Redis is needed or touched.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

if TYPE_CHECKING:
    from taskkit.registry import DeclaredJob, Registry

_UNCONNECTED = redis.Redis(host="eager-mode.invalid")  # never sends a command


class EagerJob(Job):
    """An :class:`rq.job.Job` that already ran; it lives in memory, never in Redis."""

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
        """The exception text when the job failed."""
        return self._exc_info


def run_eagerly(
    registry: Registry,
    declared: DeclaredJob,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    propagate: bool = True,
) -> EagerJob:
    """Run ``declared`` now, as a worker would, and return the finished job.

    With ``propagate`` (the default) the job's exception reaches the caller, so a
    failing job fails the test that enqueued it.
    """
    if registry.config.serializer == "json":
        # What the worker would see: tuples become lists, keys become strings.
        args_list, kwargs = json.loads(json.dumps([list(args), kwargs]))
        args = tuple(args_list)
    job = EagerJob(str(uuid.uuid4()), connection=_UNCONNECTED, serializer=JSONSerializer)
    job.func_name = declared.settings.rq_func_name
    job.args, job.kwargs = args, kwargs
    job.origin = declared.settings.queue
    job.description = declared.settings.description
    job.meta = {"taskkit_job": declared.name}
    try:
        job._result = registry.call(declared, args, kwargs)
    except Exception:
        job._status = JobStatus.FAILED
        import traceback

        job._exc_info = traceback.format_exc()
        if propagate:
            raise
        return job
    job._status = JobStatus.FINISHED
    return job


__all__ = ["EagerJob", "run_eagerly"]
