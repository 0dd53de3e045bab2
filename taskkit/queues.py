"""Queue controls: pause, resume and drain a queue; what workers read to skip paused ones.

The paused queues are one Redis set (:data:`PAUSED_KEY`), so a pause reaches every
worker of every host, survives worker restarts, and shows in ``taskkit status``. A
paused queue keeps its jobs: producers go on enqueueing, workers leave them where they
are until the queue is resumed. Workers read the set through :class:`PausedQueues`, at
most once per second, never once per job (see ``_Policies.dequeue_job_and_maintain_ttl``
in :mod:`taskkit.worker.pausing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from taskkit import connection
from taskkit.errors import QueueError
from taskkit.registry import Registry

PAUSED_KEY = "taskkit:queues:paused"
"""A Redis set of the names of the paused queues, shared by every worker and host."""
RECHECK_EVERY = 1.0
"""Seconds within which a worker reuses what it last read of :data:`PAUSED_KEY`."""
DRAIN_POLL = 0.2
"""Seconds between two looks at a draining queue."""


def paused_names(conn: redis.Redis) -> set[str]:
    """The names of the paused queues (one SMEMBERS)."""
    return {_text(name) for name in conn.smembers(PAUSED_KEY)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _declared(registry: Registry, name: str) -> str:
    if name not in registry.queue_names:
        raise QueueError(
            f"no queue {name!r} in {registry.path} "
            f"(queues: {', '.join(registry.queue_names) or 'none'}); see `taskkit queues list`"
        )
    return name


def pause(registry: Registry, name: str) -> bool:
    """Pause queue ``name`` for every worker; False if it was paused already."""
    _declared(registry, name)
    added = connection.call(
        registry.redis_url,
        f"pause queue {name}",
        lambda: registry.connection.sadd(PAUSED_KEY, name),
    )
    return bool(added)


def resume(registry: Registry, name: str) -> bool:
    """Let workers take jobs from queue ``name`` again; False if it was not paused."""
    _declared(registry, name)
    removed = connection.call(
        registry.redis_url,
        f"resume queue {name}",
        lambda: registry.connection.srem(PAUSED_KEY, name),
    )
    return bool(removed)


def is_paused(registry: Registry, name: str) -> bool:
    """Whether queue ``name`` is paused."""
    return connection.call(
        registry.redis_url,
        "read the paused queues",
        lambda: bool(registry.connection.sismember(PAUSED_KEY, name)),
    )


@dataclass(frozen=True)
class QueueLoad:
    """How much of a queue is left: jobs waiting and jobs taken or running."""

    queued: int
    running: int

    @property
    def empty(self) -> bool:
        """Nothing waits and nothing runs."""
        return self.queued == 0 and self.running == 0


def load_of(registry: Registry, name: str) -> QueueLoad:
    """Jobs waiting on queue ``name``, and jobs taken from it (running, or about to)."""
    queue = registry.queue(name)

    def read() -> QueueLoad:
        with registry.connection.pipeline(transaction=False) as pipe:
            pipe.llen(queue.key)
            pipe.zcard(queue.started_job_registry.key)
            # A job a worker took off a single queue sits here until it is started.
            pipe.llen(queue.intermediate_queue.key)
            queued, started, taken = pipe.execute()
        return QueueLoad(int(queued), int(started) + int(taken))

    return connection.call(registry.redis_url, f"read queue {name}", read)


def drain(
    registry: Registry,
    name: str,
    *,
    timeout: float,
    poll: float = DRAIN_POLL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until queue ``name`` is empty and none of its jobs runs; the seconds it took.

    Empty means so at two looks in a row: a worker that took a job off the queue has
    not always registered it as started at the very instant of one look. Raises
    :class:`QueueError` after ``timeout`` seconds, or at once if the queue is paused
    with jobs waiting (no worker would take them).
    """
    _declared(registry, name)
    started = clock()
    quiet = 0
    while True:
        current = load_of(registry, name)
        quiet = quiet + 1 if current.empty else 0
        if quiet >= 2:
            return clock() - started
        if current.queued and is_paused(registry, name):
            raise QueueError(
                f"queue {name!r} is paused with {current.queued} job(s) waiting: it cannot "
                f"drain; resume it first (`taskkit queues resume {name}`)"
            )
        if clock() - started >= timeout:
            raise QueueError(
                f"queue {name!r} did not drain within {timeout:g} s ({current.queued} "
                f"queued, {current.running} running); wait longer with --timeout"
            )
        sleep(poll)


class PausedQueues:
    """What a worker knows of the paused queues: read at most once per :data:`RECHECK_EVERY`.

    Without Redis the last set read stays in force; the worker's own handling of the
    outage takes over in the commands that follow.
    """

    def __init__(self, every: float = RECHECK_EVERY) -> None:
        self.every = every
        self.names: frozenset[str] = frozenset()
        self._read_at = -float("inf")

    def refresh(self, conn: redis.Redis, *, force: bool = False) -> frozenset[str]:
        """The paused queue names, read again if the last read is :attr:`every` s old."""
        now = time.monotonic()
        if force or now - self._read_at >= self.every:
            try:
                self.names = frozenset(paused_names(conn))
            except (redis.ConnectionError, redis.TimeoutError):
                return self.names
            self._read_at = now
        return self.names

    def split(self, names: Iterable[str]) -> tuple[list[str], list[str]]:
        """``names`` as (open, paused), each in the given order."""
        listed = list(names)
        return (
            [name for name in listed if name not in self.names],
            [name for name in listed if name in self.names],
        )


__all__ = [
    "PAUSED_KEY",
    "RECHECK_EVERY",
    "PausedQueues",
    "QueueLoad",
    "drain",
    "is_paused",
    "load_of",
    "pause",
    "paused_names",
    "resume",
]
