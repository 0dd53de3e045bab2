"""What the dashboard shows, read through taskkit's own readers; nothing here writes.

Queue counts and workers come from :func:`taskkit.status.collect`, schedules from
:func:`taskkit.schedules.describe`, failed jobs from :mod:`taskkit.failed`; arguments,
meta and exception text pass through :mod:`taskkit.redaction` as in ``taskkit failed show``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from taskkit import connection, failed, schedules, status
from taskkit.config import format_duration
from taskkit.failed import FailedJob, _exception_text
from taskkit.progress import Progress, progress_of
from taskkit.redaction import describe_call, redact, redact_call, scrub
from taskkit.registry import META_KEY, Registry

STATES = ("queued", "started", "scheduled", "deferred", "failed", "finished")
"""A queue's jobs by state: its list, then RQ's registries."""
PAGE_SIZE = 25
RECENT_FAILURES = 8
OVERDUE_AFTER = 5.0
"""Seconds past its next run after which a schedule counts as overdue (no scheduler fired)."""


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule as the dashboard shows it."""

    name: str
    job: str
    when: str
    state: str
    enabled: bool
    last_run: datetime | None
    last_outcome: str | None
    last_job_id: str | None
    lateness: float | None
    next_run: datetime | None
    overdue: float | None
    last_run_id: str | None = None  # a workflow schedule's latest run


@dataclass(frozen=True)
class Overview:
    """The first page: queues, workers, schedules and the latest failures."""

    status: status.Status
    schedules: list[ScheduleRow]
    failures: list[FailedJob]
    failed_total: int


@dataclass(frozen=True)
class JobRow:
    """One job in a list: what it is and where it stands."""

    id: str
    name: str
    call: str
    status: str
    created_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Page:
    """One page of a queue's jobs in one state."""

    queue: status.QueueStatus
    state: str
    number: int
    total: int
    jobs: list[JobRow]

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max(1, -(-self.total // PAGE_SIZE))


@dataclass(frozen=True)
class JobView:
    """One job in full, with secrets hidden."""

    id: str
    name: str
    queue: str
    status: str
    args: list[Any]
    kwargs: dict[str, Any]
    description: str
    created_at: datetime | None
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    exception: str
    retries_left: int | None
    meta: dict[str, Any]
    result: Any
    worker: str | None
    progress: Progress | None = None


def overview(registry: Registry, now: datetime | None = None) -> Overview:
    """Everything the overview shows (a handful of Redis round trips per queue)."""
    ids = failed_ids(registry)
    return Overview(
        status=status.collect(registry),
        schedules=schedule_rows(registry, now),
        failures=failed_page(registry, ids[:RECENT_FAILURES]),
        failed_total=len(ids),
    )


def schedule_rows(registry: Registry, now: datetime | None = None) -> list[ScheduleRow]:
    """Each schedule with its last run (and how late it fired) and its next run."""
    moment = now or datetime.now(UTC)
    return [_schedule_row(view, moment) for view in schedules.describe(registry, moment, 1)]


def _schedule_row(view: schedules.ScheduleView, now: datetime) -> ScheduleRow:
    last = view.last
    lateness = None
    if last.get("outcome") not in (None, schedules.BY_HAND) and "at" in last and "nominal" in last:
        lateness = max(0.0, float(last["at"]) - float(last["nominal"]))
    overdue = None
    if view.stored_next is not None and view.schedule.enabled:
        behind = (now - view.stored_next).total_seconds()
        overdue = behind if behind > OVERDUE_AFTER else None
    return ScheduleRow(
        name=view.name,
        job=view.schedule.target,
        when=_form(view.schedule),
        state=view.state,
        enabled=view.schedule.enabled,
        last_run=view.last_run,
        last_outcome=last.get("outcome"),
        last_job_id=last.get("job_id"),
        lateness=lateness,
        next_run=view.stored_next,
        overdue=overdue,
        last_run_id=last.get("run_id"),
    )


def _form(schedule: Any) -> str:
    if schedule.cron is not None:
        return f"cron {schedule.cron} ({schedule.timezone})"
    if schedule.every is not None:
        return f"every {format_duration(schedule.every)}"
    return f"at {schedule.at.isoformat()}"


# -- failed jobs ---------------------------------------------------------------------------


def failed_ids(registry: Registry) -> list[str]:
    """The ids of every failed job of the declared queues, latest failure first."""

    def read() -> list[str]:
        scored: list[tuple[float, str]] = []
        for name in registry.queue_names:
            key = registry.queue(name).failed_job_registry.key
            entries: Any = registry.connection.zrange(key, 0, -1, withscores=True)
            scored += [(float(score), _text(job_id)) for job_id, score in entries]
        return [job_id for _, job_id in sorted(scored, reverse=True)]

    return connection.call(registry.redis_url, "read failed jobs", read)


def failed_page(registry: Registry, ids: list[str]) -> list[FailedJob]:
    """The failed jobs ``ids``, as ``taskkit failed show`` reads them (secrets hidden)."""
    found = [failed.get_failed(registry, job_id) for job_id in ids]
    return [job for job in found if job is not None]


# -- a queue's jobs, and one job ---------------------------------------------------------------


def queue_page(registry: Registry, name: str, state: str, number: int) -> Page:
    """Page ``number`` (from 1) of queue ``name``'s jobs in ``state``, newest first
    for the registries, in the order workers take them for ``queued``."""
    current = next(q for q in status.collect(registry).queues if q.name == name)
    total = int(getattr(current, state))
    start = (number - 1) * PAGE_SIZE
    queue = registry.queue(name)

    def read() -> list[JobRow]:
        if state == "queued":
            ids = queue.get_job_ids(start, PAGE_SIZE)
        else:
            job_registry = getattr(queue, f"{state}_job_registry")
            # cleanup=False: reading a page must not change what it reads.
            ids = job_registry.get_job_ids(start, start + PAGE_SIZE - 1, desc=True, cleanup=False)
        return [_row(registry, job_id) for job_id in ids]

    jobs = connection.call(registry.redis_url, f"read queue {name}", read)
    return Page(current, state, number, total, jobs)


def _row(registry: Registry, job_id: str) -> JobRow:
    job = _fetch(registry, job_id)
    if job is None:
        return JobRow(job_id, "?", "(gone, or unreadable)", "?", None, None)
    name, args, kwargs = _call_of(registry, job)
    declared = registry.jobs.get(name)
    call = describe_call(name, args, kwargs, declared.signature if declared else None)
    return JobRow(job.id, name, call, _status(job), job.created_at, job.ended_at)


def job_view(registry: Registry, job_id: str) -> JobView | None:
    """Job ``job_id`` in full (secrets hidden), or None if Redis has no such job."""

    def read() -> JobView | None:
        job = _fetch(registry, job_id)
        return None if job is None else _view(registry, job)

    return connection.call(registry.redis_url, f"read job {job_id}", read)


def _progress(job: Job, secrets: Any) -> Progress | None:
    """The progress the job reported, its message scrubbed of the job's secret arguments."""
    reported = progress_of(job)
    if reported is None or reported.message is None:
        return reported
    return dataclasses.replace(reported, message=scrub(reported.message, secrets))


def _view(registry: Registry, job: Job) -> JobView:
    name, raw_args, raw_kwargs = _call_of(registry, job)
    declared = registry.jobs.get(name)
    signature = declared.signature if declared else None
    args, kwargs, secrets = redact_call(raw_args, raw_kwargs, signature)
    meta = {k: v for k, v in (job.meta or {}).items() if k != META_KEY}
    return JobView(
        id=job.id,
        name=name,
        queue=str(job.origin or "?"),
        status=_status(job),
        args=args,
        kwargs=kwargs,
        description=describe_call(name, raw_args, raw_kwargs, signature),
        created_at=job.created_at,
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        exception=scrub(_exception_text(job), secrets),
        retries_left=job.retries_left,
        meta=redact(meta),
        result=redact(_result(job)),
        worker=job.worker_name,
        progress=_progress(job, secrets),
    )


def _fetch(registry: Registry, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=registry.connection, serializer=registry.serializer)
    except (NoSuchJobError, ValueError):  # gone, or not a valid RQ id
        return None
    except (redis.ConnectionError, redis.TimeoutError):
        raise
    except Exception:  # a hash RQ cannot read: the page says so instead of failing
        return None


def _call_of(registry: Registry, job: Job) -> tuple[str, list[Any], dict[str, Any]]:
    """The job's jobs.yaml name (RQ's function name if it has none) and its arguments."""
    meta_name = job.meta.get(META_KEY) if isinstance(job.meta, dict) else None
    try:
        args, kwargs, func_name = list(job.args), dict(job.kwargs), job.func_name or "?"
    except Exception:  # an unparsable payload: show what we can
        args, kwargs, func_name = [], {}, "(unreadable payload)"
    return str(meta_name or func_name), args, kwargs


def _status(job: Job) -> str:
    try:
        found = job.get_status(refresh=False)
    except Exception:
        return "?"
    return str(getattr(found, "value", found) or "?")


def _result(job: Job) -> Any:
    try:
        return job.return_value(refresh=False)
    except Exception:
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "PAGE_SIZE",
    "STATES",
    "JobRow",
    "JobView",
    "Overview",
    "Page",
    "ScheduleRow",
    "failed_ids",
    "failed_page",
    "job_view",
    "overview",
    "queue_page",
    "schedule_rows",
]
