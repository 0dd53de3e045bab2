"""Running workers from the command line: the process set-up, one worker, or a pool."""

from __future__ import annotations

import logging
import os
from typing import Any, NoReturn

from rq.worker import BaseWorker

from taskkit import connection, logs
from taskkit.config import WorkerConfig
from taskkit.context import install_fork_hygiene
from taskkit.errors import WorkerCrashedError
from taskkit.registry import Registry
from taskkit.worker.base import use_settings
from taskkit.worker.classes import WORKER_CLASSES, TaskkitForkWorker, WorkerClassName
from taskkit.worker.job import TaskkitJob
from taskkit.worker.outages import RedisGoneError, wait_for_redis
from taskkit.worker.pool import TaskkitWorkerPool
from taskkit.worker.queue import TaskkitQueue

log = logging.getLogger("taskkit.worker")

def _worker_class(name: WorkerClassName) -> type[BaseWorker]:
    return TaskkitForkWorker if name == "fork" else WORKER_CLASSES[name]


def prepare_process(
    registry: Registry, *, fork_hygiene: bool = True, settings: WorkerConfig | None = None
) -> None:
    """Set up this process to run jobs: registry, app, job modules; before any fork.

    The job modules were imported when the registry was loaded; the app is built here,
    once, so work horses inherit both instead of rebuilding them per job.
    ``$TASKKIT_CONFIG`` is set so that the app factory's ``TaskKit(app)`` and spawned
    work horses load this same jobs.yaml (from the per-process cache, for the former).
    ``fork_hygiene`` empties the app's database pools now and in every forked child;
    a process that never forks (a simple worker in a test) may leave them alone.
    ``settings`` (default: jobs.yaml's ``worker:``) become this process's workers'.
    """
    TaskkitJob.registry = registry
    use_settings(settings or registry.config.worker)
    os.environ["TASKKIT_CONFIG"] = str(registry.path.resolve())
    if registry.process_app.configured or registry.process_app.built is not None:
        app = registry.process_app.get()
        if fork_hygiene:
            install_fork_hygiene(app)


def make_worker(
    registry: Registry,
    queues: list[str] | None = None,
    worker_class: WorkerClassName = "fork",
    **options: Any,
) -> BaseWorker:
    """An RQ worker of ``worker_class`` on ``queues`` (default: all, in declared order);
    ``options`` go to RQ's worker and may replace its queue class."""
    cls = _worker_class(worker_class)
    settings: dict[str, Any] = {
        "connection": registry.connection,
        "job_class": TaskkitJob,
        "queue_class": TaskkitQueue,
        "serializer": registry.serializer,
    }
    return cls(queues or registry.queue_names, **(settings | options))


def run_worker(
    registry: Registry,
    *,
    queues: list[str] | None = None,
    worker_class: WorkerClassName = "fork",
    burst: bool = False,
    max_jobs: int | None = None,
    processes: int = 1,
    log_level: str = "INFO",
    settings: WorkerConfig | None = None,
) -> bool:
    """Run jobs until stopped (or, with ``burst``, until the queues are empty).

    RQ's own scheduler always runs alongside, in a process of its own, so declared retry
    intervals and ``enqueue_in``/``enqueue_at`` jobs happen without any extra flag. With
    ``burst`` RQ runs it once, at start: jobs already due are run, and jobs due later
    (including retries whose interval ends during the run) stay scheduled for the next
    worker.

    The app factory runs once per worker process, before any fork: ``fork`` work horses
    inherit the app; ``simple`` runs jobs in this process; ``spawn`` starts a fresh
    interpreter per job, which loads jobs.yaml from ``$TASKKIT_CONFIG`` and builds the
    app itself, so there the factory runs once per job as well. ``processes`` > 1 runs
    RQ's worker pool, whose workers are forked from this process after the app was
    built: the factory runs once in all. SIGTERM (or SIGINT) lets the current job finish,
    then the worker exits; a second one stops it at once (see :mod:`taskkit.worker.stopping`).

    ``settings`` (default: jobs.yaml's ``worker:``) bound the recovery of dead workers'
    jobs and how long Redis may be away: at start and later, a worker waits for it up to
    ``redis_timeout`` seconds, then :class:`~taskkit.errors.RedisUnavailableError` is
    raised. Returns whether any job was run (always True for a pool).
    """
    if processes > 1 and max_jobs is not None:
        raise ValueError("max_jobs cannot be combined with processes > 1 (RQ's pool has no limit)")
    # Logging itself is the caller's to set up (the CLI does, with taskkit.logs); RQ's
    # work() resets its own logger to the level it is given, INFO by default.
    rq_level = logs.rq_logging_level(log_level)
    settings = settings or registry.config.worker
    prepare_process(registry, settings=settings)
    names = queues or registry.queue_names
    with connection.redis_errors(registry.redis_url, "start the worker"):
        try:
            wait_for_redis(registry.connection, settings.redis_timeout)
            if processes > 1:
                pool = _pool(registry, names, worker_class, processes)
                pool.start(burst=burst, logging_level=rq_level)
                if pool.redis_gone is not None:
                    raise pool.redis_gone
                return True
            worker = make_worker(registry, names, worker_class)
            worked = worker.work(
                burst=burst, max_jobs=max_jobs, with_scheduler=True, logging_level=rq_level
            )
            if getattr(worker, "redis_gone", None) is not None:
                raise worker.redis_gone  # type: ignore[attr-defined]
            crashed = getattr(worker, "crashed", None)
            if crashed is not None:
                raise WorkerCrashedError(crashed)
            return bool(worked)
        except RedisGoneError as gone:
            _report_redis_gone(registry, gone)


def _pool(
    registry: Registry, names: list[str], worker_class: WorkerClassName, processes: int
) -> TaskkitWorkerPool:
    return TaskkitWorkerPool(
        names,
        connection=registry.connection,
        num_workers=processes,
        worker_class=_worker_class(worker_class),
        job_class=TaskkitJob,
        serializer=registry.serializer,
    )


def _report_redis_gone(registry: Registry, gone: RedisGoneError) -> NoReturn:
    """Raise the one clear error for a worker that gave up waiting for Redis."""
    doing = (
        f"{'start' if gone.at_start else 'keep running'} the worker (no answer from Redis "
        f"for {gone.seconds} s; wait longer with --redis-timeout or worker.redis_timeout)"
    )
    with connection.redis_errors(registry.redis_url, doing):
        raise gone.last_error
    raise gone  # not reached: redis_errors turns every Redis error into its own
