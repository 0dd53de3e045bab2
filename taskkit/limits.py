"""Concurrency limits: at most ``limit`` jobs sharing a key run at once, on RQ's RateLimit.

rq 3.0's :class:`rq.RateLimit` does what ``concurrency:`` promises: a job over the limit
is saved as ``rate_limited`` in a sorted set of its key (not on its queue, so the jobs
behind it run), and one takes a slot (the key's ``allowed`` set) when it goes onto its
queue. The worker that ends the job frees its slot and, in the same Lua script, moves the
oldest waiting job onto its queue: no busy loop, nothing polls. A SIGKILLed worker's job
is failed or retried by the maintenance pass (see :func:`taskkit.worker.recovery_bound`),
which frees its slot in the same pass. A slot is taken from enqueue to end, so a job
waiting in its queue counts against the limit too: at most ``limit`` jobs run, and at
most ``limit`` wait in queues, the others in the key's set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rq import RateLimit
from rq.rate_limit import RateLimitRegistry
from rq.utils import current_timestamp

from taskkit.flow import KEY_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

    import redis

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


__all__ = ["concurrency_limit", "promote", "register", "slots_key", "waiting_set"]
