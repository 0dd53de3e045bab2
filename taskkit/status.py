"""What is queued, who is working, and what the schedules did: ``taskkit status``.

Read from RQ's own keys (queues, registries, worker hashes), so the figures are the
ones ``rq info`` and rq-dashboard show too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rq import Worker
from rq.job import Job

from taskkit import connection, limits
from taskkit.limits import LimitStatus
from taskkit.progress import progress_of
from taskkit.queues import PAUSED_KEY
from taskkit.registry import META_KEY, Registry
from taskkit.schedules import SCHEDULER_KEY_PREFIX, describe
from taskkit.schedules.foreign import neighbours

REGISTRIES = ("started", "scheduled", "deferred", "failed", "finished")


@dataclass(frozen=True)
class QueueStatus:
    """Job counts of one queue, by state, and whether it is paused (``taskkit queues``)."""

    name: str
    queued: int
    started: int
    scheduled: int
    deferred: int
    failed: int
    finished: int
    paused: bool = False


@dataclass(frozen=True)
class WorkerStatus:
    """One live RQ worker."""

    name: str
    host: str | None
    pid: int | None
    state: str
    queues: list[str]
    current_job: str | None
    current_job_name: str | None
    successful: int
    failed: int
    last_heartbeat: str | None
    current_job_progress: str | None = None  # "40% exported 400 rows", as the job reported


@dataclass(frozen=True)
class ScheduleStatus:
    """One schedule's last and next run."""

    name: str
    job: str
    state: str
    next_run: str | None
    last_run: str | None
    last_outcome: str | None


@dataclass(frozen=True)
class Status:
    """Everything ``taskkit status`` shows."""

    redis: str
    queues: list[QueueStatus]
    workers: list[WorkerStatus]
    schedules: list[ScheduleStatus]
    schedulers: list[str] = field(default_factory=list)
    rq_schedulers: list[str] = field(default_factory=list)
    """Live ``rqscheduler`` processes of rq-scheduler on this database."""
    rq_scheduler_entries: int = 0
    """rq-scheduler's own entries, which taskkit does not fire."""
    note: str | None = None
    """What those mean for taskkit's schedules, in one line."""
    limits: list[LimitStatus] = field(default_factory=list)
    """Concurrency keys in use and rate limit keys holding jobs back."""
    taken_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self)


def collect(registry: Registry) -> Status:
    """Read the status of every declared queue, live worker and schedule."""
    url = registry.redis_url
    return connection.call(url, "read status", lambda: _collect(registry, url))


def _collect(registry: Registry, url: str) -> Status:
    conn = registry.connection
    names = registry.queue_names
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            queue = registry.queue(name)
            pipe.llen(queue.key)
            for kind in REGISTRIES:
                pipe.zcard(getattr(queue, f"{kind}_job_registry").key)
        pipe.smembers(PAUSED_KEY)
        *counts, paused = pipe.execute()
    found = neighbours(conn)
    width = 1 + len(REGISTRIES)
    paused_names = {n.decode() if isinstance(n, bytes) else n for n in paused}
    queues = [
        QueueStatus(name, *counts[i * width : (i + 1) * width]) for i, name in enumerate(names)
    ]
    queues = [replace(queue, paused=queue.name in paused_names) for queue in queues]
    return Status(
        redis=str(url),
        queues=queues,
        workers=_workers(registry),
        schedules=_schedules(registry),
        schedulers=sorted(
            key.decode().removeprefix(SCHEDULER_KEY_PREFIX)
            for key in conn.scan_iter(match=f"{SCHEDULER_KEY_PREFIX}*")
        ),
        rq_schedulers=found.rq_schedulers,
        rq_scheduler_entries=found.entries,
        note=found.note(),
        limits=limits.statuses(conn),
    )


def _workers(registry: Registry) -> list[WorkerStatus]:
    found = []
    for worker in Worker.all(connection=registry.connection, serializer=registry.serializer):
        executions = worker.get_current_executions()
        job_id = executions[0].job_id if executions else worker.get_current_job_id()
        heartbeat = worker.last_heartbeat
        name, progress = _job_name(registry, job_id) if job_id else (None, None)
        found.append(
            WorkerStatus(
                name=worker.name,
                host=worker.hostname,
                pid=worker.pid,
                state=str(worker.get_state()),
                queues=worker.queue_names(),
                current_job=job_id,
                current_job_name=name,
                successful=worker.successful_job_count,
                failed=worker.failed_job_count,
                last_heartbeat=heartbeat.isoformat() if heartbeat else None,
                current_job_progress=progress,
            )
        )
    return sorted(found, key=lambda w: (w.host or "", w.pid or 0))


def _job_name(registry: Registry, job_id: str) -> tuple[str | None, str | None]:
    """The jobs.yaml name of a running job (from its meta), else RQ's function name; and
    the progress it reported, if any."""
    try:
        job = Job.fetch(job_id, connection=registry.connection, serializer=registry.serializer)
        name = job.meta.get(META_KEY) if isinstance(job.meta, dict) else None
        progress = progress_of(job)
        return str(name or job.func_name), str(progress) if progress else None
    except Exception:  # gone meanwhile, or written by a producer we cannot read
        return None, None


def _schedules(registry: Registry) -> list[ScheduleStatus]:
    views = describe(registry, count=1)
    result = []
    for view in views:
        last = view.last
        last_run = view.last_run.isoformat() if view.last_run else None
        result.append(
            ScheduleStatus(
                name=view.name,
                job=view.schedule.target,
                state=view.state,
                next_run=view.stored_next.isoformat() if view.stored_next else None,
                last_run=last_run,
                last_outcome=last.get("outcome"),
            )
        )
    return result


__all__ = ["QueueStatus", "ScheduleStatus", "Status", "WorkerStatus", "collect"]
