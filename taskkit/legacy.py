"""Jobs queued before the switch to taskkit: ``taskkit legacy convert``.

Code written for plain RQ, Flask-RQ2 or Flask-RQ leaves pickled jobs in the queues
(``queue.enqueue("app.jobs.send", 1)``); a taskkit worker, which reads JSON, refuses
them. This one-off command rewrites, in place and under the same job id, each such job
that calls a function jobs.yaml declares: JSON data, the declared job's name in its meta,
and the declared job's queue. The worker then runs it like any other taskkit job, in its
declared context. Every other job is left as it is, and a worker still refuses it.

Why a command and not a worker mode that accepts pickles: unpickling runs code that the
pickle names, so a worker that accepts them trusts whoever can write to Redis for as long
as it runs. Here the pickles are read once, with a restricted unpickler that builds only
plain values (:mod:`taskkit.safepickle`), and the workers never unpickle anything.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import redis
from rq import Queue
from rq.job import Job

from taskkit import connection
from taskkit.errors import TaskkitError
from taskkit.registry import META_KEY, DeclaredJob, Registry
from taskkit.safepickle import UnsafePickleError, job_field
from taskkit.schedules.store import _text

Outcome = Literal["converted", "left"]


@dataclass(frozen=True)
class Found:
    """One pickled job and what the conversion did (or would do) with it."""

    job_id: str
    queue: str
    outcome: Outcome
    job: str | None = None
    """The declared job it runs as (converted)."""
    reason: str = ""
    """Why it was left (a worker refuses it)."""

    def __str__(self) -> str:
        if self.outcome == "converted":
            return f"converted {self.job_id} (queue {self.queue}) -> job {self.job}"
        return f"left      {self.job_id} (queue {self.queue}): {self.reason}"


@dataclass(frozen=True)
class _Place:
    """Where a job id waits: a queue's list, or its registry of delayed jobs."""

    queue: str
    key: str
    scheduled: bool


def convert(
    registry: Registry, queues: list[str] | None = None, *, dry_run: bool = False
) -> list[Found]:
    """Convert the pickled jobs of ``queues`` (default: every RQ queue on the database)
    that call a declared function; return what was found, converted or left."""
    if registry.config.serializer == "pickle":
        raise TaskkitError(
            f"{registry.path} uses serializer: pickle, so its workers read pickled jobs as "
            "they are (and run those that call a declared function); nothing to convert"
        )
    return connection.call(
        registry.redis_url,
        "convert pickled jobs",
        lambda: [found for place in _places(registry, queues) for found in
                 _convert_place(registry, place, dry_run)],
    )  # fmt: skip


def _places(registry: Registry, queues: list[str] | None) -> Iterator[_Place]:
    names = queues or sorted(
        {q.name for q in Queue.all(connection=registry.connection)} | set(registry.queue_names)
    )
    for name in names:
        queue = Queue(name, connection=registry.connection)
        yield _Place(name, queue.key, scheduled=False)
        yield _Place(name, queue.scheduled_job_registry.key, scheduled=True)


def _convert_place(registry: Registry, place: _Place, dry_run: bool) -> Iterator[Found]:
    conn = registry.connection
    ids = conn.zrange(place.key, 0, -1) if place.scheduled else conn.lrange(place.key, 0, -1)
    for raw_id in ids:
        found = _convert_one(registry, place, _text(raw_id), dry_run)
        if found is not None:
            yield found


def _convert_one(registry: Registry, place: _Place, job_id: str, dry_run: bool) -> Found | None:
    """Convert one job, or say why it stays; None for a job that is no pickle."""
    conn = registry.connection
    fields: dict[str, Any] = {_text(k): v for k, v in conn.hgetall(Job.key_for(job_id)).items()}
    try:
        data, wire = job_field(fields.get("data"), compressed=True)
    except UnsafePickleError as error:
        return Found(job_id, place.queue, "left", reason=f"its data is not plain values: {error}")
    except ValueError:
        return None  # not a job taskkit can tell anything about; the worker decides
    if wire != "pickle":
        return None
    declared, reason = _declared(registry, data)
    if declared is None:
        return Found(job_id, place.queue, "left", reason=reason)
    if not dry_run:
        _rewrite(conn, place, job_id, declared, data=data, meta=_meta(fields.get("meta")))
    return Found(job_id, place.queue, "converted", job=declared.name)


def _declared(registry: Registry, data: Any) -> tuple[DeclaredJob | None, str]:
    try:
        func_name, instance, args, kwargs = list(data)
    except (TypeError, ValueError):
        return None, "its data is not an RQ job"
    if instance is not None:
        return None, f"it calls a method of an instance ({func_name!r})"
    declared = registry.jobs_calling(func_name)
    if len(declared) != 1:
        many = "several jobs declare it" if declared else f"{registry.path} does not declare it"
        return None, f"it calls {func_name!r}, and {many}; a worker refuses it"
    try:
        registry._prepare(declared[0].name, tuple(args), dict(kwargs))
    except TaskkitError as error:
        return None, str(error)
    return declared[0], ""


def _meta(raw: Any) -> dict[str, Any]:
    """The old job's meta, where it holds plain JSON values (progress, notes)."""
    try:
        meta, _ = job_field(raw)
        json.dumps(meta)
    except (ValueError, TypeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _rewrite(
    conn: redis.Redis,
    place: _Place,
    job_id: str,
    declared: DeclaredJob,
    *,
    data: Any,
    meta: dict[str, Any],
) -> None:
    """JSON data, the job's name and queue, one transaction; the job keeps its id and
    its place in line (a job that changes queues goes to the end of the new one)."""
    _, _, args, kwargs = data
    settings = declared.settings
    # What rq's JSONSerializer writes, which taskkit's workers read.
    payload = json.dumps((settings.rq_func_name, None, list(args), dict(kwargs))).encode()
    target = Queue(settings.queue, connection=conn)
    with conn.pipeline() as pipe:
        pipe.multi()
        pipe.hset(
            Job.key_for(job_id),
            mapping={
                "data": zlib.compress(payload),
                "meta": json.dumps({**meta, META_KEY: settings.name}).encode(),
                "origin": settings.queue,
            },
        )
        if settings.queue != place.queue:
            _move(pipe, place, target, job_id, conn)
        pipe.execute()


def _move(
    pipe: redis.client.Pipeline, place: _Place, target: Queue, job_id: str, conn: redis.Redis
) -> None:
    if place.scheduled:
        score = conn.zscore(place.key, job_id) or 0
        pipe.zrem(place.key, job_id)
        pipe.zadd(target.scheduled_job_registry.key, {job_id: score})
    else:
        pipe.lrem(place.key, 1, job_id)
        pipe.rpush(target.key, job_id)
        pipe.sadd("rq:queues", target.key)


__all__ = ["Found", "convert"]
