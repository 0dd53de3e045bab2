"""Failed jobs: list, show, requeue and purge what is in RQ's failed registries.

What is shown never carries a secret (see :mod:`taskkit.redaction`): arguments whose
parameter name looks secret are ``***``, positional ones too (named through the declared
function's signature), and the exception text has those values and URL passwords masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.results import Result

from taskkit import connection
from taskkit.config import SecretUrl
from taskkit.errors import TaskkitError
from taskkit.progress import Progress, progress_of
from taskkit.redaction import redact_call, scrub
from taskkit.registry import META_KEY, Registry


@dataclass(frozen=True)
class FailedJob:
    """A job in a failed registry, as people may see it (secrets hidden)."""

    id: str
    queue: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    failed_at: datetime | None
    exc_info: str
    progress: Progress | None = None  # what the job last reported before it failed

    @property
    def reason(self) -> str:
        """The exception's type and message on one line, without the traceback.

        Not the traceback's last line: that is only the end of a message of several lines.
        """
        lines = [line for line in self.exc_info.strip().splitlines() if line.strip()]
        frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
        # After the last frame come its indented source lines, then the exception.
        rest = lines[frames[-1] + 1 :] if frames else lines
        message = [line.strip() for line in rest if not line.startswith("    ")]
        return " ".join(message) or "(no exception recorded)"


def _url(registry: Registry) -> SecretUrl:
    return registry.redis_url


def _job_ids(registry: Registry) -> Iterator[tuple[str, str]]:
    for name in registry.queue_names:
        for job_id in registry.queue(name).failed_job_registry.get_job_ids():
            yield name, job_id


def list_failed(registry: Registry, job_name: str | None = None) -> list[FailedJob]:
    """Every failed job of the declared queues (or of one declared job), oldest first.

    Raises :class:`UnknownJobError` if ``job_name`` is not declared.
    """
    if job_name is not None:
        registry.job(job_name)

    def read() -> list[FailedJob]:
        found = [_load(registry, queue, job_id) for queue, job_id in _job_ids(registry)]
        jobs = [job for job in found if job is not None]
        return [job for job in jobs if job_name is None or job.name == job_name]

    return connection.call(_url(registry), "read failed jobs", read)


def get_failed(registry: Registry, job_id: str) -> FailedJob | None:
    """One failed job by id or by a prefix of one id (as git takes a commit's), or None if
    no declared queue holds it as failed.

    Raises :class:`TaskkitError` when the prefix starts more than one failed job's id.
    """

    def read() -> FailedJob | None:
        for name in registry.queue_names:
            key = registry.queue(name).failed_job_registry.key
            if registry.connection.zscore(key, job_id) is not None:
                return _load(registry, name, job_id)
        matches = [(q, i) for q, i in _job_ids(registry) if i.startswith(job_id)]
        if len(matches) > 1:
            shown = ", ".join(sorted(i for _, i in matches)[:5])
            raise TaskkitError(
                f"{job_id!r} starts the ids of {len(matches)} failed jobs ({shown}"
                f"{', ...' if len(matches) > 5 else ''}); give more of the id"
            )
        return _load(registry, *matches[0]) if matches else None

    return connection.call(_url(registry), "read a failed job", read)


def _load(registry: Registry, queue: str, job_id: str) -> FailedJob | None:
    try:
        job = Job.fetch(job_id, connection=registry.connection, serializer=registry.serializer)
    except NoSuchJobError:
        return None
    except Exception as error:  # a hash RQ cannot even read still deserves a line
        return FailedJob(job_id, queue, "?", [], {}, None, f"unreadable job: {error!r}")
    name = job.meta.get(META_KEY) if isinstance(job.meta, dict) else None
    try:
        raw_args, kwargs, func_name = list(job.args), dict(job.kwargs), job.func_name or "?"
    except Exception:  # an unparsable payload: show what we can
        raw_args, kwargs, func_name = [], {}, "(unreadable payload)"
    declared = registry.jobs.get(name) if isinstance(name, str) else None
    args, shown_kwargs, secrets = redact_call(
        raw_args, kwargs, declared.signature if declared else None
    )
    return FailedJob(
        id=job.id,
        queue=queue,
        name=str(name or func_name),
        args=args,
        kwargs=shown_kwargs,
        failed_at=job.ended_at,
        exc_info=scrub(_exception_text(job), secrets),
        progress=progress_of(job),
    )


def _exception_text(job: Job) -> str:
    result = job.latest_result()
    if result is not None and result.type == Result.Type.FAILED:
        return str(result.exc_string or "")
    return ""


def requeue(registry: Registry, job_ids: list[str]) -> list[str]:
    """Put failed jobs back on their queues; returns the ids requeued."""

    def run() -> list[str]:
        by_id = {job_id: queue for queue, job_id in _job_ids(registry)}
        done = []
        for job_id in job_ids:
            queue = by_id.get(job_id)
            if queue is not None:
                registry.queue(queue).failed_job_registry.requeue(job_id)
                done.append(job_id)
        return done

    return connection.call(_url(registry), "requeue failed jobs", run)


def purge(registry: Registry, job_ids: list[str] | None = None) -> list[str]:
    """Delete failed jobs (all of them when ``job_ids`` is None); returns the ids deleted."""

    def run() -> list[str]:
        deleted = []
        for queue, job_id in list(_job_ids(registry)):
            if job_ids is None or job_id in job_ids:
                registry.queue(queue).failed_job_registry.remove(job_id, delete_job=True)
                deleted.append(job_id)
        return deleted

    return connection.call(_url(registry), "purge failed jobs", run)


__all__ = ["FailedJob", "get_failed", "list_failed", "purge", "requeue"]
