"""Failed jobs: list, show, requeue and purge what is in RQ's failed registries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job

from taskkit import connection
from taskkit.registry import META_KEY, Registry

_SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|api[_-]?key|auth|credential", re.I)
REDACTED = "***"


def redact(value: Any, key: str = "") -> Any:
    """``value`` with anything under a secret-looking key (password, token, ...) hidden."""
    if key and _SECRET_NAME.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class FailedJob:
    """A job in a failed registry, as people need to see it."""

    id: str
    queue: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    failed_at: datetime | None
    exc_info: str

    @property
    def reason(self) -> str:
        """The last line of the exception: usually the one that says what went wrong."""
        lines = [line for line in self.exc_info.strip().splitlines() if line.strip()]
        return lines[-1] if lines else "(no exception recorded)"


def _job_ids(registry: Registry) -> Iterator[tuple[str, str]]:
    for name in registry.queue_names:
        for job_id in registry.queue(name).failed_job_registry.get_job_ids():
            yield name, job_id


def list_failed(registry: Registry, job_name: str | None = None) -> list[FailedJob]:
    """Every failed job of the declared queues (or of one declared job)."""

    def read() -> list[FailedJob]:
        found = [_load(registry, queue, job_id) for queue, job_id in _job_ids(registry)]
        jobs = [job for job in found if job is not None]
        return [job for job in jobs if job_name is None or job.name == job_name]

    return connection.call(registry.config.redis.url, "read failed jobs", read)


def get_failed(registry: Registry, job_id: str) -> FailedJob | None:
    """One failed job by id, or None if no declared queue holds it as failed."""
    return next((job for job in list_failed(registry) if job.id == job_id), None)


def _load(registry: Registry, queue: str, job_id: str) -> FailedJob | None:
    try:
        job = Job.fetch(job_id, connection=registry.connection, serializer=registry.serializer)
    except NoSuchJobError:
        return None
    except Exception as error:  # a hash RQ cannot even read still deserves a line
        return FailedJob(job_id, queue, "?", [], {}, None, f"unreadable job: {error!r}")
    try:
        args, kwargs, func_name = list(job.args), dict(job.kwargs), job.func_name or "?"
    except Exception:  # an unparsable payload: show what we can
        args, kwargs, func_name = [], {}, "(unreadable payload)"
    name = job.meta.get(META_KEY) if isinstance(job.meta, dict) else None
    return FailedJob(
        id=job.id,
        queue=queue,
        name=str(name or func_name),
        args=redact(args),
        kwargs=redact(kwargs),
        failed_at=job.ended_at,
        exc_info=job.exc_info or "",
    )


def requeue(registry: Registry, job_ids: list[str]) -> list[str]:
    """Put failed jobs back on their queues; returns the ids requeued."""
    by_id = dict((job_id, queue) for queue, job_id in _job_ids(registry))

    def run() -> list[str]:
        done = []
        for job_id in job_ids:
            queue = by_id.get(job_id)
            if queue is not None:
                registry.queue(queue).failed_job_registry.requeue(job_id)
                done.append(job_id)
        return done

    return connection.call(registry.config.redis.url, "requeue failed jobs", run)


def purge(registry: Registry, job_ids: list[str] | None = None) -> int:
    """Delete failed jobs (all of them when ``job_ids`` is None); returns how many."""

    def run() -> int:
        count = 0
        for queue, job_id in list(_job_ids(registry)):
            if job_ids is None or job_id in job_ids:
                registry.queue(queue).failed_job_registry.remove(job_id, delete_job=True)
                count += 1
        return count

    return connection.call(registry.config.redis.url, "purge failed jobs", run)


__all__ = ["FailedJob", "get_failed", "list_failed", "purge", "redact", "requeue"]
