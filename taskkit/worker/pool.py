"""RQ's worker pool (``--processes N``) with taskkit's workers; it stops when they give up.

Its workers are forked from this process as it is (registry, app, settings). RQ's pool
would respawn a worker that gave up on Redis, forever, and its workers outlive a pool
that is SIGKILLed (a restart then runs twice the workers); taskkit's end their job and
stop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing.process import BaseProcess
from typing import Any

import redis
from rq.worker_pool import WorkerData, WorkerPool

from taskkit.worker.base import WorkerBase, _queue_names
from taskkit.worker.horses import die_with_parent
from taskkit.worker.outages import RedisGoneError, wait_for_redis
from taskkit.worker.queue import TaskkitQueue

log = logging.getLogger("taskkit.worker")

REDIS_GONE_EXIT = 75
"""Exit status of a pool worker that gave up on Redis (EX_TEMPFAIL)."""


class TaskkitWorkerPool(WorkerPool):
    """RQ's worker pool, with taskkit's workers; it stops when they give up on Redis.

    Its workers are forked from this process as it is (registry, app, settings). RQ's
    pool would respawn a worker that gave up on Redis, forever.
    """

    redis_gone: RedisGoneError | None = None

    def __init__(self, queues: Any, connection: redis.Redis, **kwargs: Any) -> None:
        kwargs.setdefault("queue_class", TaskkitQueue)
        super().__init__(queues, connection, **kwargs)
        self.queue_list = _queue_names(queues)

    def get_worker_process(
        self, name: str, burst: bool, _sleep: float = 0, logging_level: str = "INFO"
    ) -> BaseProcess:
        """A forked process that runs one taskkit worker called ``name``."""
        return multiprocessing.get_context("fork").Process(
            target=_run_pool_worker,
            args=(self, name, burst, logging_level, os.getpid()),
            name=f"Worker {name} (WorkerPool {self.name})",
        )

    def handle_dead_worker(self, worker_data: WorkerData) -> None:
        """A worker that gave up on Redis stops the pool (the others give up too)."""
        if worker_data.process.exitcode == REDIS_GONE_EXIT and self.redis_gone is None:
            self.redis_gone = RedisGoneError(
                WorkerBase.settings.redis_timeout, redis.ConnectionError("a pool worker gave up")
            )
            self.status = self.Status.STOPPED
            self.stop_workers()  # type: ignore[no-untyped-call]
        super().handle_dead_worker(worker_data)


def _run_pool_worker(
    pool: TaskkitWorkerPool, name: str, burst: bool, logging_level: str, pool_pid: int
) -> None:
    """The body of a pool's worker process; a SIGTERM stops it when the pool dies."""
    die_with_parent(pool_pid, signal.SIGTERM)
    try:
        wait_for_redis(pool.connection, WorkerBase.settings.redis_timeout)
    except RedisGoneError:
        sys.exit(REDIS_GONE_EXIT)
    worker = pool.worker_class(
        pool.queue_list,
        name=name,
        connection=pool.connection,
        serializer=pool.serializer,
        job_class=pool.job_class,
        queue_class=pool.queue_class,
    )
    worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
    if getattr(worker, "redis_gone", None) is not None:
        sys.exit(REDIS_GONE_EXIT)
    if getattr(worker, "crashed", None) is not None:
        sys.exit(1)  # the pool starts another worker in its place
