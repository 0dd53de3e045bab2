"""The worker side: an RQ job class that runs only declared jobs, in their context.

RQ stays in charge of dequeueing, timeouts, retries, registries and results; taskkit
only decides *what* a dequeued job may call. ``TaskkitJob.func`` resolves the job against
jobs.yaml instead of importing whatever name the Redis entry holds, so a forged or stale
entry is failed with a reason and nothing is imported or called for it. The same goes for
the callbacks an entry may name, and an entry whose hash cannot be read fails alone
instead of stopping the worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, Literal, NoReturn

from rq import Queue, SimpleWorker, Worker
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.worker import BaseWorker
from rq.worker.worker_classes import SpawnWorker
from rq.worker_pool import WorkerPool

from taskkit import logs
from taskkit.context import install_fork_hygiene
from taskkit.errors import UndeclaredJobError
from taskkit.registry import META_KEY, DeclaredJob, Registry, load

log = logging.getLogger("taskkit.worker")

WorkerClassName = Literal["fork", "simple", "spawn"]

# The hash fields RQ needs to fail a job whose other fields cannot be read.
_SALVAGED_FIELDS = frozenset({"data", "origin", "description"})


class TaskkitJob(Job):
    """An RQ job that may only call what jobs.yaml declares.

    The registry is set once per worker process (:func:`prepare_process`); a spawned work
    horse, which starts from nothing, loads it from ``$TASKKIT_CONFIG``.

    With ``serializer: pickle`` an entry's data is unpickled before it can be checked, and
    unpickling can run code: a pickle worker trusts whoever can write to its Redis. With
    JSON (the default) nothing in an entry is imported or called before the check.
    """

    registry: ClassVar[Registry | None] = None

    _taskkit_call: Callable[..., Any] | None = None
    _taskkit_refusal: str | None = None
    _taskkit_malformed: str | None = None

    @classmethod
    def worker_registry(cls) -> Registry:
        """This process's registry, loading it in a freshly spawned work horse."""
        if TaskkitJob.registry is None:
            logs.setup_inherited()
            TaskkitJob.registry = load(os.environ.get("TASKKIT_CONFIG") or None)
        return TaskkitJob.registry

    @property
    def func(self) -> Callable[..., Any]:
        """The declared job's callable under its context policy; never an import from Redis.

        RQ reads this property twice per run, so the resolution is kept on the instance.
        """
        if self._taskkit_call is None:
            self._taskkit_call = self._resolve()
        return self._taskkit_call

    def _resolve(self) -> Callable[..., Any]:
        registry = self.worker_registry()
        declared, reason = _declared_job(registry, self)
        if declared is None:
            self._refuse(f"{reason}; nothing was run")
        return partial(_run_logged, registry, declared, self)

    def _refuse(self, reason: str) -> NoReturn:
        self._taskkit_refusal = reason
        # A refused entry gets no retries and sends none of the webhooks it names.
        self.webhooks = []
        _log_refusal(self, reason)
        raise UndeclaredJobError(f"refused job {self.id}: {reason}")

    @property
    def should_retry(self) -> bool:
        """RQ's retry rule, except that a refused entry is never retried."""
        return self._taskkit_refusal is None and bool(super().should_retry)

    @property
    def success_callback(self) -> None:
        """Always None: a callback named in Redis would be an import from Redis."""
        return self._ignored_callback("on_success", self._success_callback_name)

    @property
    def failure_callback(self) -> None:
        """Always None; see :attr:`success_callback`."""
        return self._ignored_callback("on_failure", self._failure_callback_name)

    @property
    def stopped_callback(self) -> None:
        """Always None; see :attr:`success_callback`."""
        return self._ignored_callback("on_stopped", self._stopped_callback_name)

    def _ignored_callback(self, kind: str, name: Any) -> None:
        if name:
            log.warning(
                "job %s names the %s callback %r; taskkit workers only call what jobs.yaml "
                "declares, so it was ignored",
                self.id,
                kind,
                name,
            )

    def restore(self, raw_data: Any) -> None:
        """Read a job hash; one with unreadable fields becomes a job that is refused.

        RQ raises from here on, say, a bad ``created_at``, and a bare worker then quits
        with the valid jobs behind that entry never run.
        """
        try:
            super().restore(raw_data)
        except NoSuchJobError:
            raise
        except Exception as error:
            self._taskkit_malformed = f"{type(error).__name__}: {error}"
            super().restore({key: value for key, value in raw_data.items() if _field(key)})

    def _deserialize_data(self) -> None:
        try:
            super()._deserialize_data()  # type: ignore[no-untyped-call]
        except DeserializationError as error:
            serializer = getattr(self.serializer, "__name__", repr(self.serializer))
            reason = (
                f"its data cannot be decoded with {serializer} (jobs.yaml's serializer); was "
                "it enqueued by a producer using another serializer? Nothing was run"
            )
            if self._taskkit_refusal is None:  # RQ reads the data more than once
                self._taskkit_refusal = reason
                _log_refusal(self, reason)
            raise DeserializationError(f"refused job {self.id}: {reason}") from error.__cause__


class TaskkitSpawnWorker(SpawnWorker):
    """RQ's SpawnWorker, whose fresh work horse sets up logging and the registry first.

    A spawned horse is a new interpreter: nothing the worker set up is there, and RQ
    reads the job's data (and may refuse it) before any job code would load jobs.yaml.
    """

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """Load the registry (from ``$TASKKIT_CONFIG``), then work the job as RQ does."""
        TaskkitJob.worker_registry()
        super().main_work_horse(job, queue)


WORKER_CLASSES: dict[str, type[BaseWorker]] = {
    "fork": Worker,
    "simple": SimpleWorker,
    "spawn": TaskkitSpawnWorker,
}


def _field(key: bytes | str) -> bool:
    return (key.decode() if isinstance(key, bytes) else key) in _SALVAGED_FIELDS


def _declared_job(registry: Registry, job: TaskkitJob) -> tuple[DeclaredJob | None, str]:
    """The declared job an entry stands for, or None and why it stands for none."""
    if job._taskkit_malformed is not None:
        return None, f"its Redis hash is malformed ({job._taskkit_malformed})"
    func_name = job.func_name
    if job.instance is not None:
        return None, f"it names a method ({func_name!r} of an instance); jobs.yaml declares none"
    meta_name = job.meta.get(META_KEY)
    declared = registry.declared_for(func_name, meta_name)
    if declared is not None:
        return declared, ""
    if isinstance(meta_name, str) and meta_name in registry.jobs:
        expected = registry.jobs[meta_name].settings.rq_func_name
        return None, (
            f"it says it is job {meta_name!r} but names {func_name!r}, not {expected!r} "
            "(a stale entry from an older jobs.yaml, or a forged one)"
        )
    if len(registry.jobs_calling(func_name)) > 1:
        return None, (
            f"{func_name!r} is declared by several jobs and the entry does not say which "
            "(enqueue it through taskkit, which records the job's name)"
        )
    return None, (
        f"it names {func_name!r}, which {registry.path} does not declare "
        "(a forged or stale entry, or another app's job)"
    )


def _run_logged(
    registry: Registry, declared: DeclaredJob, job: Job, *args: Any, **kwargs: Any
) -> Any:
    """Run the job under its context policy and log one line: name, queue, time, outcome.

    The facts are also record attributes (see :mod:`taskkit.logs`), for JSON logs.
    """
    started = time.perf_counter()
    try:
        result = registry.call(declared, args, kwargs)
    except BaseException as error:
        elapsed = (time.perf_counter() - started) * 1000
        failure = f"{type(error).__name__}: {error}"
        log.warning(
            "%s queue=%s id=%s %.1fms failed: %s",
            declared.name,
            declared.settings.queue,
            job.id,
            elapsed,
            failure,
            extra=_facts(declared, job, elapsed, "failed", failure),
        )
        raise
    if log.isEnabledFor(logging.INFO):
        elapsed = (time.perf_counter() - started) * 1000
        log.info(
            "%s queue=%s id=%s %.1fms ok",
            declared.name,
            declared.settings.queue,
            job.id,
            elapsed,
            extra=_facts(declared, job, elapsed, "ok"),
        )
    return result


def _facts(
    declared: DeclaredJob, job: Job, elapsed: float, outcome: str, error: str | None = None
) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "job": declared.name,
        "queue": declared.settings.queue,
        "job_id": job.id,
        "duration_ms": round(elapsed, 1),
        "outcome": outcome,
    }
    if error is not None:
        facts["error"] = error
    return facts


def _log_refusal(job: Job, reason: str) -> None:
    log.error(
        "refused job %s from queue %s: %s",
        job.id,
        job.origin,
        reason,
        extra={"queue": job.origin, "job_id": job.id, "outcome": "refused", "error": reason},
    )


def prepare_process(registry: Registry, *, fork_hygiene: bool = True) -> None:
    """Set up this process to run jobs: registry, app, job modules; before any fork.

    The job modules were imported when the registry was loaded; the app is built here,
    once, so work horses inherit both instead of rebuilding them per job.
    ``$TASKKIT_CONFIG`` is set so that the app factory's ``TaskKit(app)`` and spawned
    work horses load this same jobs.yaml (from the per-process cache, for the former).
    ``fork_hygiene`` empties the app's database pools now and in every forked child;
    a process that never forks (a simple worker in a test) may leave them alone.
    """
    TaskkitJob.registry = registry
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
    then the worker exits. Returns whether any job was run (always True for a pool).
    """
    if processes > 1 and max_jobs is not None:
        raise ValueError("max_jobs cannot be combined with processes > 1 (RQ's pool has no limit)")
    # Logging itself is the caller's to set up (the CLI does, with taskkit.logs); RQ's
    # work() resets its own logger to the level it is given, INFO by default.
    rq_level = logs.rq_logging_level(log_level)
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
        pool.start(burst=burst, logging_level=rq_level)
        return True
    worker = make_worker(registry, names, worker_class)
    return bool(
        worker.work(burst=burst, max_jobs=max_jobs, with_scheduler=True, logging_level=rq_level)
    )


__all__ = [
    "WORKER_CLASSES",
    "TaskkitJob",
    "TaskkitSpawnWorker",
    "make_worker",
    "prepare_process",
    "run_worker",
]
