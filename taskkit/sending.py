"""Sending a created job to Redis: plain, scheduled, unique, over a concurrency limit, or
when the database session commits (``enqueue: after_commit``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rq import Queue, RateLimit
from rq.job import Job

from taskkit import after_commit, limits
from taskkit.declared import DeclaredJob
from taskkit.limits import concurrency_limit
from taskkit.uniqueness import enqueue_unique

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from taskkit.registry import Registry


def after_commit_send(
    registry: Registry,
    session: Session,
    declared: DeclaredJob,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    at: datetime | None,
    eagerly: bool,
) -> Job:
    """The job, sent (or run, eagerly) when ``session`` commits; never if it rolls back.

    The job returned is the one that will be sent, with its id (a unique job's
    duplicate found at commit time is not sent, and its holder is not returned).
    """
    if eagerly:
        from taskkit.eager import new_job

        holder = registry.eager_jobs.holder(declared, args, kwargs)
        if holder is not None:
            return holder
        waiting = new_job(declared, args, kwargs)
        key = declared.flow.unique_key(args, kwargs)
        if key is not None:  # it holds its key while it waits for the commit
            registry.eager_jobs.holders[key] = waiting
        after_commit.defer(
            session,
            lambda: registry._run_eagerly(declared, args, kwargs, job=waiting),
            lambda: registry.eager_jobs.holders.pop(key or "", None),
        )
        return waiting
    limit = concurrency_limit(declared, args, kwargs)
    job = registry._create(declared, args, kwargs, rate_limit=limit)
    after_commit.defer(
        session, lambda: dispatch(registry, declared, job, args, kwargs, at=at, limit=limit)
    )
    return job


def dispatch(
    registry: Registry,
    declared: DeclaredJob,
    job: Job,
    call_args: tuple[Any, ...],
    call_kwargs: dict[str, Any],
    *,
    at: datetime | None,
    limit: RateLimit | None,
) -> Job:
    """Send a created job: unique, limited, scheduled or plain."""
    name = declared.name
    queue = registry.queue(declared.settings.queue)
    key = declared.flow.unique_key(call_args, call_kwargs)
    if key is not None:
        return registry._write(
            f"enqueue {name!r}",
            lambda: _enqueue_unique(registry, declared, queue, job, key, at=at, limit=limit),
        )
    if at is None and limit is not None:
        # RQ refuses a limited job in a pipeline: it promotes it in a second call.
        return registry._write(f"enqueue {name!r}", lambda: queue.enqueue_job(job))
    if at is None:
        return _send(registry, f"enqueue {name!r}", queue, job)
    return registry._write(f"schedule {name!r}", lambda: queue.schedule_job(job, at))


def _enqueue_unique(
    registry: Registry,
    declared: DeclaredJob,
    queue: Queue,
    job: Job,
    key: str,
    *,
    at: datetime | None,
    limit: RateLimit | None,
) -> Job:
    """A unique job's claim; one over a concurrency limit waits in its key's set."""
    unique = declared.settings.unique
    assert unique is not None
    if limit is None or at is not None:  # RQ's scheduler holds a due limited job back
        return enqueue_unique(queue, job, key, unique.while_, at=at)
    limits.register(registry.connection, limit)
    held_in = limits.waiting_set(registry.connection, limit)
    sent = enqueue_unique(queue, job, key, unique.while_, held_in=held_in)
    limits.promote(registry.connection, limit)  # the job's status in Redis tells the outcome
    return sent


def _send(registry: Registry, doing: str, queue: Queue, job: Job) -> Job:
    """Enqueue ``job`` in one MULTI/EXEC: one round trip, applied whole or not at all."""

    def send() -> Job:
        with registry.connection.pipeline() as pipe:
            queue.enqueue_job(job, pipeline=pipe)
            pipe.execute()
        return job

    return registry._write(doing, send)


def one_by_one(declared: DeclaredJob) -> bool:
    """Whether a batch with this job must be sent job by job."""
    settings = declared.settings
    return (
        settings.unique is not None
        or settings.concurrency is not None
        or settings.enqueue == "after_commit"
    )
