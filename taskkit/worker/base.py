"""What every taskkit worker shares: its settings, the state its bends keep, small helpers.

taskkit's workers are RQ's own (``fork``, ``simple``, ``spawn``) and its pool, bent
where RQ 3.0 loses time or jobs when something dies. Each bend is a class named for what
it changes (:mod:`.recovery`, :mod:`.outages`, :mod:`.stopping`, :mod:`.retries`,
:mod:`.horses`, :mod:`.rq_scheduler`), all built on :class:`WorkerBase`, and combined by
:mod:`.classes`. Every RQ method they override and every private attribute of RQ's they
use is listed, with the rq version checked, in ``tests/test_rq_contract.py``.

The settings (:class:`~taskkit.config.WorkerConfig`) are per process, like the job class's
registry: RQ's worker pool builds its workers without passing options through.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import redis
from rq import Queue
from rq.exceptions import StopRequested
from rq.job import Job
from rq.worker import BaseWorker

from taskkit.config import WorkerConfig
from taskkit.worker.queue import TaskkitQueue

if TYPE_CHECKING:
    from taskkit.worker.outages import RedisGoneError

log = logging.getLogger("taskkit.worker")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
"""What redis-py raises when Redis cannot be reached or does not answer in time."""


def use_settings(settings: WorkerConfig) -> None:
    """Make ``settings`` the recovery and Redis settings of every worker of this process."""
    WorkerBase.settings = settings


class WorkerBase(BaseWorker):
    """RQ's worker with the state taskkit's bends share (see each attribute)."""

    settings: ClassVar[WorkerConfig] = WorkerConfig()

    max_connection_wait_time = 10.0  # RQ's backoff between tries grows up to 60 s

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", self.settings.maintenance_interval)
        kwargs.setdefault("job_monitoring_interval", self.settings.heartbeat_interval)
        # Names, so that RQ builds the queues with this worker's job class: maintenance
        # must read a malformed job hash as the worker does, not crash on it.
        kwargs.setdefault("queue_class", TaskkitQueue)
        super().__init__(_queue_names(queues), *args, **kwargs)
        self.redis_lost_at: float | None = None
        self.redis_gone: RedisGoneError | None = None
        self.crashed: BaseException | None = None
        self.running: tuple[Job, Queue] | None = None
        self._attempt_retried = False  # the failure being recorded is retried (see below)
        # What the round-trip savings below need to know (see heartbeat, set_state).
        self._last_beat = (-math.inf, 0)  # (monotonic time, TTL it set)
        self._job_in_hand = False  # dequeued, not yet run: a stop must let it run first
        self._state_written: str | None = None
        self._suspension_checked_at = -math.inf
        self._tearing_down = False


    @contextmanager
    def _quitting_on_error(self) -> Iterator[None]:
        """Remember an error RQ's loop is about to quit on (RQ: with exit status 0).

        RQ logs it with its traceback and ends ``work()`` as if asked to stop; the caller
        sees :attr:`crashed` and exits non-zero, so a process manager restarts the worker.
        """
        try:
            yield
        except (*REDIS_ERRORS, StopRequested):
            raise
        except Exception as error:
            self.crashed = error
            raise

    def _redis_lost(self, error: Exception) -> None:
        if self.redis_lost_at is None:
            self.redis_lost_at = time.monotonic()
            log.warning(
                "lost Redis at %s (%s); retrying with backoff for up to %d s",
                _address(self.connection),
                _reason(error),
                self.settings.redis_timeout,
            )

    def note_horse_beat(self, job: Job) -> None:
        """A work horse is about to renew this worker's key with a job's TTL."""
        self._last_beat = (time.monotonic(), self.get_heartbeat_ttl(job))


def _queue_names(queues: Any) -> list[str]:
    items: Sequence[Any] = [queues] if isinstance(queues, str | Queue) else list(queues or [])
    return [item.name if isinstance(item, Queue) else str(item) for item in items]


def _now() -> datetime:
    return datetime.now(UTC)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _address(client: redis.Redis) -> str:
    """Where ``client`` connects, never with its password: ``host:port/db`` or a socket."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _reason(error: Exception) -> str:
    """The first line of a redis-py error (host and port, never a password)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(": <redis.", 1)[0].rstrip(".")
