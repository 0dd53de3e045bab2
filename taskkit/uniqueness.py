"""Unique jobs: a duplicate enqueue returns the job already waiting (or running).

The job and its claim on the key go to Redis in one MULTI/EXEC: the job's hash is
written, then a Lua script looks at the job the key names. If that job still holds the
key, the script deletes the new hash and answers the holder's id; otherwise it points
the key at the new job and puts it on its queue (or in the scheduled registry). So two
processes enqueueing the same key at the same instant get one job, in one round trip
each, and nobody ever sees the duplicate's hash.

Whether the named job still holds the key is read from the job itself, not from a
lease kept beside it, so the key is free as soon as the job ends in any way: finished,
failed, stopped or canceled (its status), deleted or expired (its hash is gone). A job
that runs holds it (``while: queued_or_running``) only while RQ's record of its
execution is alive in the started registry: its expiry there is the job's heartbeat (a
fork or spawn worker renews it; a simple worker sets it to the job's timeout plus
grace), so the key of a job whose worker was SIGKILLed is free once that heartbeat
expires, before the job itself is recovered. (RQ's per-job execution set keeps each
execution 60 s longer than its heartbeat; that set only names the executions.)
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import now

from taskkit.flow import KEY_PREFIX

if TYPE_CHECKING:
    import redis

UNIQUE_META = "taskkit_unique"
"""The job meta field holding the job's unique key (shown by ``taskkit status``)."""

# KEYS: unique key, new job's hash, queue list or scheduled registry (or held-jobs set)
# ARGV: new id, job key prefix, while, how to send (push|schedule|hold), score,
#       executions key prefix, started registry key prefix
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
    local status = redis.call('HGET', ARGV[2] .. holder, 'status')
    local holds = status == 'queued' or status == 'scheduled' or status == 'deferred'
        or status == 'rate_limited'
    if status == 'started' and ARGV[3] == 'queued_or_running' then
        local t = redis.call('TIME')
        local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
        local wip = ARGV[7] .. (redis.call('HGET', ARGV[2] .. holder, 'origin') or '')
        for _, execution in ipairs(redis.call('ZRANGE', ARGV[6] .. holder, 0, -1)) do
            local beat = redis.call('ZSCORE', wip, holder .. ':' .. execution)
            if beat and (beat == 'inf' or tonumber(beat) > now) then
                holds = true
            end
        end
    end
    if holds then
        redis.call('DEL', KEYS[2])
        return holder
    end
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[4] == 'push' then
    redis.call('RPUSH', KEYS[3], ARGV[1])
else
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
return ARGV[1]
"""

While = Literal["queued", "queued_or_running"]


def redis_key(key: str) -> str:
    """The Redis key of a rendered unique key."""
    return f"{KEY_PREFIX}unique:{key}"


def enqueue_unique(
    queue: Queue,
    job: Job,
    key: str,
    holds_while: While,
    *,
    at: datetime | None = None,
    held_in: tuple[str, float] | None = None,
) -> Job:
    """Send ``job`` unless a job holding ``key`` exists; returns the job that holds it.

    ``at`` schedules the job instead; ``held_in`` (a sorted set and a score) puts it
    there instead of on its queue, for a job that waits for a concurrency slot.
    """
    for _ in range(3):  # the holder may end between our answer and its fetch
        holder = _claim(queue, job, key, holds_while, at=at, held_in=held_in)
        if holder == job.id:
            return job
        try:
            return queue.job_class.fetch(
                holder, connection=queue.connection, serializer=queue.serializer
            )
        except NoSuchJobError:
            continue
    return (
        job
        if _claim(queue, job, key, holds_while, at=at, held_in=held_in) == job.id
        else _gone(key)
    )


def _claim(
    queue: Queue,
    job: Job,
    key: str,
    holds_while: While,
    *,
    at: datetime | None,
    held_in: tuple[str, float] | None,
) -> str:
    connection: redis.Redis = queue.connection
    job.meta[UNIQUE_META] = key
    job.origin = queue.name
    if at is not None:
        status, target, score, how = (
            JobStatus.SCHEDULED,
            queue.scheduled_job_registry.key,
            at.timestamp(),
            "schedule",
        )
    elif held_in is not None:
        status, target, score, how = JobStatus.RATE_LIMITED, held_in[0], held_in[1], "hold"
    else:
        status, target, score, how = JobStatus.QUEUED, queue.key, 0.0, "push"
        job.enqueued_at = now()
    job.redis_server_version = queue.get_redis_server_version()
    with connection.pipeline() as pipe:  # MULTI/EXEC: all of it, or none
        pipe.sadd(queue.redis_queues_keys, queue.key)
        job.set_status(status, pipeline=pipe)
        job.save(pipeline=pipe)
        pipe.eval(
            _CLAIM,
            3,
            redis_key(key),
            job.key,
            target,
            job.id,
            job.redis_job_namespace_prefix,
            holds_while,
            how,
            score,
            ExecutionRegistry.key_template.format(""),
            StartedJobRegistry.key_template.format(""),
        )
        holder = pipe.execute()[-1]
    return holder.decode() if isinstance(holder, bytes) else str(holder)


def _gone(key: str) -> Job:
    from taskkit.errors import TaskkitError

    raise TaskkitError(
        f"unique key {key!r} kept naming jobs that vanished as they were read; "
        "something deletes jobs as fast as they are enqueued: try again"
    )


__all__ = ["UNIQUE_META", "enqueue_unique", "redis_key"]
