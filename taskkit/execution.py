"""The worker side: an RQ job class that runs only declared jobs, in their context.

RQ stays in charge of dequeueing, timeouts, retries, registries and results; taskkit
only decides *what* a dequeued job may call. ``TaskkitJob.func`` resolves the job against
jobs.yaml instead of importing whatever name the Redis entry holds, so a forged or stale
entry is failed with a reason and nothing is imported or called for it.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from typing import Any, ClassVar, Literal

from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.worker import BaseWorker
from rq.worker.worker_classes import SpawnWorker
from rq.worker_pool import WorkerPool

from taskkit.context import install_fork_hygiene
from taskkit.errors import UndeclaredJobError
from taskkit.registry import META_KEY, DeclaredJob, Registry, load

log = logging.getLogger("taskkit.worker")

WorkerClassName = Literal["fork", "simple", "spawn"]
WORKER_CLASSES: dict[str, type[BaseWorker]] = {
    "fork": Worker,
    "simple": SimpleWorker,
    "spawn": SpawnWorker,
}


class TaskkitJob(Job):
    """An RQ job that may only call what jobs.yaml declares.

    The registry is set once per worker process (:func:`prepare_process`); a spawned work
    horse, which starts from nothing, loads it from ``$TASKKIT_CONFIG``.
    """

    registry: ClassVar[Registry | None] = None

    @classmethod
    def worker_registry(cls) -> Registry:
        """This process's registry, loading it in a freshly spawned work horse."""
        if TaskkitJob.registry is None:
            TaskkitJob.registry = load(os.environ.get("TASKKIT_CONFIG") or None)
        return TaskkitJob.registry

    @property
    def func(self) -> Any:
        """The declared job's callable under its context policy; never an import from Redis."""
        registry = self.worker_registry()
        declared = registry.declared_for(self.func_name, self.meta.get(META_KEY))
        if declared is None:
            raise UndeclaredJobError(
                f"refused job {self.id}: it names {self.func_name!r}, which {registry.path} does "
                "not declare (a forged or stale entry, or another app's job); nothing was run"
            )
        return partial(_run_logged, registry, declared, self)


def _run_logged(
    registry: Registry, declared: DeclaredJob, job: Job, *args: Any, **kwargs: Any
) -> Any:
    started = time.perf_counter()
    try:
        result = registry.call(declared, args, kwargs)
    except BaseException as error:
        elapsed = (time.perf_counter() - started) * 1000
        log.warning(
            "%s queue=%s id=%s %.1fms failed: %s: %s",
            declared.name,
            declared.settings.queue,
            job.id,
            elapsed,
            type(error).__name__,
            error,
        )
        raise
    elapsed = (time.perf_counter() - started) * 1000
    log.info("%s queue=%s id=%s %.1fms ok", declared.name, declared.settings.queue, job.id, elapsed)
    return result


def prepare_process(registry: Registry) -> None:
    """Set up this process to run jobs: registry, app, job modules; before any fork.

    The job modules were imported when the registry was loaded; the app is built here,
    once, so work horses inherit both instead of rebuilding them per job.
    """
    TaskkitJob.registry = registry
    os.environ["TASKKIT_CONFIG"] = str(registry.path.resolve())
    if registry.process_app.configured:
        install_fork_hygiene(registry.process_app.get())


def make_worker(
    registry: Registry,
    queues: list[str] | None = None,
    worker_class: WorkerClassName = "fork",
    **options: Any,
) -> BaseWorker:
    """An RQ worker of ``worker_class`` on ``queues`` (default: all, in declared order)."""
    cls = WORKER_CLASSES[worker_class]
    return cls(
        [registry.queue(name) for name in queues or registry.queue_names],
        connection=registry.connection,
        job_class=TaskkitJob,
        queue_class=Queue,
        serializer=registry.serializer,
        **options,
    )


def run_worker(
    registry: Registry,
    *,
    queues: list[str] | None = None,
    worker_class: WorkerClassName = "fork",
    burst: bool = False,
    max_jobs: int | None = None,
    processes: int = 1,
    log_level: str = "INFO",
) -> bool:
    """Run jobs until stopped (or, with ``burst``, until the queues are empty).

    RQ's own scheduler always runs alongside, so declared retry intervals and
    ``enqueue_in``/``enqueue_at`` jobs happen without any extra flag.
    """
    prepare_process(registry)
    names = queues or registry.queue_names
    if processes > 1:
        pool = WorkerPool(
            [registry.queue(name) for name in names],
            connection=registry.connection,
            num_workers=processes,
            worker_class=WORKER_CLASSES[worker_class],
            job_class=TaskkitJob,
            serializer=registry.serializer,
        )
        pool.start(burst=burst, logging_level=log_level)
        return True
    worker = make_worker(registry, names, worker_class)
    return bool(
        worker.work(
            burst=burst,
            max_jobs=max_jobs,
            with_scheduler=True,
            logging_level=log_level,
        )
    )


__all__ = ["WORKER_CLASSES", "TaskkitJob", "make_worker", "prepare_process", "run_worker"]
