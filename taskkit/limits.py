"""Concurrency and rate limits: how many jobs sharing a key run at once, and start per window.

Concurrency (``concurrency:``) is built on RQ's RateLimit:

rq 3.0's :class:`rq.RateLimit` does what ``concurrency:`` promises: a job over the limit
is saved as ``rate_limited`` in a sorted set of its key (not on its queue, so the jobs
behind it run), and one takes a slot (the key's ``allowed`` set) when it goes onto its
queue. The worker that ends the job frees its slot and, in the same Lua script, moves the
oldest waiting job onto its queue: no busy loop, nothing polls. A SIGKILLed worker's job
is failed or retried by the maintenance pass (see :func:`taskkit.worker.recovery_bound`),
which frees its slot in the same pass. A slot is taken from enqueue to end, so a job
waiting in its queue counts against the limit too: at most ``limit`` jobs run, and at
most ``limit`` wait in queues, the others in the key's set.

Rate limits (``rate_limit:``) are a sliding window log, checked when a worker has taken
a job and is about to start it: the starts of the last ``per`` seconds are kept in a
sorted set per key (Redis's clock); with fewer than ``limit`` of them, the start is
added and the job runs; otherwise the job goes to its queue's scheduled registry, due
when the oldest start leaves the window, and the worker takes the next job. One Lua
script does both, so no window ever holds more than ``limit`` starts, across workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from rq import RateLimit
from rq.rate_limit import RateLimitRegistry
from rq.utils import current_timestamp

from taskkit.flow import KEY_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

    import redis
    from rq import Queue
    from rq.job import Job

    from taskkit.registry import DeclaredJob


def concurrency_limit(
    declared: DeclaredJob, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> RateLimit | None:
    """RQ's limit for this call of a job with ``concurrency:``, or None."""
    key = declared.flow.concurrency_key(args, kwargs)
    if key is None:
        return None
    assert declared.settings.concurrency is not None
    return RateLimit(slots_key(key), declared.settings.concurrency.limit)


def rate_limiter(
    declared: DeclaredJob, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> RateLimiter | None:
    """The sliding window this call of a job with ``rate_limit:`` starts in, or None."""
    key = declared.flow.rate_key(args, kwargs)
    if key is None:
        return None
    limit = declared.settings.rate_limit
    assert limit is not None
    return RateLimiter(key, limit.limit, float(limit.per))


def slots_key(key: str) -> str:
    """RQ's rate limit key of a rendered concurrency key (kept apart from other RQ users)."""
    return f"{KEY_PREFIX}{key}"


def waiting_set(connection: redis.Redis, limit: RateLimit) -> tuple[str, float]:
    """Where a unique job over the limit waits: the key's set, scored now (oldest first)."""
    # RQ scores that set with this host's clock (oldest first); so do we.
    return RateLimitRegistry(limit.key, connection).rate_limited_key, float(current_timestamp())


def register(connection: redis.Redis, limit: RateLimit) -> None:
    """Record the key and its limit, as RQ's enqueue does, so maintenance cleans it."""
    with connection.pipeline() as pipe:
        RateLimitRegistry(limit.key, connection).register(limit.concurrency, pipe)
        pipe.execute()


def promote(connection: redis.Redis, limit: RateLimit) -> list[str]:
    """Move waiting jobs of the key onto their queues while slots are free."""
    return RateLimitRegistry(limit.key, connection).acquire_and_enqueue(limit.concurrency)


RATE_PREFIX = f"{KEY_PREFIX}rate:"
RATE_KEYS = f"{RATE_PREFIX}keys"
"""The set of rate limit keys that held a job back (what ``taskkit status`` reads)."""
STARTED_AT_FIELD = "taskkit_rate_started_at"
"""The job hash field with the instant (Redis's clock) the rate limiter let it start."""

# KEYS: window, intermediate list, scheduled registry, job hash, waiting set, keys set
# ARGV: limit, per (s), job id, the rendered key, the job's started-at field
_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, per = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. t[1] .. '.' .. t[2])
    redis.call('PEXPIRE', KEYS[1], math.ceil(per * 1000) + 1000)
    redis.call('HSET', KEYS[4], ARGV[5], string.format('%.6f', now))
    return false
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local due = tonumber(oldest[2]) + per
redis.call('LREM', KEYS[2], 1, ARGV[3])
redis.call('ZADD', KEYS[3], due, ARGV[3])
redis.call('HSET', KEYS[4], 'status', 'scheduled')
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
redis.call('ZADD', KEYS[5], due, ARGV[3])
local keep = math.ceil((due - now) * 1000) + 1000
if redis.call('PTTL', KEYS[5]) < keep then
    redis.call('PEXPIRE', KEYS[5], keep)
end
redis.call('SADD', KEYS[6], ARGV[4])
return string.format('%.6f', due)
"""


@dataclass(frozen=True)
class RateLimiter:
    """The sliding window of one rendered ``rate_limit`` key."""

    key: str
    limit: int
    per: float

    @property
    def window_key(self) -> str:
        """The sorted set of the starts in the window."""
        return f"{RATE_PREFIX}{self.key}"

    @property
    def waiting_key(self) -> str:
        """The sorted set of the jobs held back, scored by when they are due."""
        return waiting_key(self.key)

    def start_or_delay(self, connection: redis.Redis, job: Job, queue: Queue) -> float | None:
        """Let ``job`` (taken off ``queue``) start: None; else it is delayed: when it is due."""
        due = connection.eval(
            _START,
            6,
            self.window_key,
            queue.intermediate_queue.key,
            queue.scheduled_job_registry.key,
            job.key,
            self.waiting_key,
            RATE_KEYS,
            self.limit,
            self.per,
            job.id,
            self.key,
            STARTED_AT_FIELD,
        )
        return None if due is None else float(due)


@dataclass(frozen=True)
class LimitStatus:
    """A limit key that holds jobs back or counts running ones (``taskkit status``)."""

    kind: str  # concurrency | rate_limit
    key: str
    limit: int
    taken: int  # concurrency: slots taken (jobs queued or running); rate_limit: -1
    waiting: int  # jobs held back


def statuses(connection: redis.Redis) -> list[LimitStatus]:
    """Every concurrency key in use and every rate limit key holding jobs back."""
    found = []
    for registry in RateLimitRegistry.all(connection):
        if registry.key.startswith(KEY_PREFIX):
            taken, waiting = (
                registry.get_allowed_job_count(),
                registry.get_rate_limited_job_count(),
            )
            key = registry.key.removeprefix(KEY_PREFIX)
            found.append(LimitStatus("concurrency", key, registry.concurrency, taken, waiting))
    now = float(current_timestamp())
    for raw in sorted(cast("set[bytes]", connection.smembers(RATE_KEYS))):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        waiting = int(connection.zcount(waiting_key(key), now, "+inf"))
        if waiting:
            found.append(LimitStatus("rate_limit", key, -1, -1, waiting))
    return found


def waiting_key(key: str) -> str:
    """The sorted set of the jobs a rate limit key held back, scored by when they are due."""
    return f"{RATE_PREFIX}{key}:waiting"


__all__ = [
    "RATE_KEYS",
    "STARTED_AT_FIELD",
    "LimitStatus",
    "RateLimiter",
    "concurrency_limit",
    "promote",
    "rate_limiter",
    "register",
    "slots_key",
    "statuses",
    "waiting_key",
    "waiting_set",
]
