"""The worker side: an RQ job class that runs only declared jobs, in their context.

RQ stays in charge of dequeueing, timeouts, retries, registries and results; taskkit
only decides *what* a dequeued job may call. ``TaskkitJob.func`` resolves the job against
jobs.yaml instead of importing whatever name the Redis entry holds, so a forged or stale
entry is failed with a reason and nothing is imported or called for it. The same goes for
the callbacks an entry may name, and an entry whose hash cannot be read fails alone
instead of stopping the worker. The worker classes themselves (how they stop, recover
abandoned jobs and outlast Redis outages) are in :mod:`taskkit.workers`.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar, Literal, NoReturn

import redis
from rq import Queue
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job
from rq.worker import BaseWorker

from taskkit import connection, logs, workers
from taskkit.config import WorkerConfig
from taskkit.context import install_fork_hygiene
from taskkit.errors import UndeclaredJobError, WorkerCrashedError
from taskkit.registry import META_KEY, DeclaredJob, Registry, load
from taskkit.workers import (
    WORKER_CLASSES,
    RedisGoneError,
    TaskkitQueue,
    TaskkitSpawnWorker,
    is_job_id,
    shown,
)
from taskkit.workflows.steps import step_call

log = logging.getLogger("taskkit.worker")

WorkerClassName = Literal["fork", "simple", "spawn"]

# What a job hash without data stands for: a name no jobs.yaml declares.
_NO_DATA: tuple[str, None, list[Any], dict[str, Any]] = ("<no data>", None, [], {})


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

    @classmethod
    def fetch(cls, id: str, connection: redis.Redis | None = None, serializer: Any = None) -> Job:
        """RQ's fetch; an id RQ cannot build a job for is a missing job, not an error.

        RQ raises ValueError for it (``validate_job_id``) wherever the id came from: a
        registry read during maintenance, an intermediate list, a spawned horse.
        """
        if not is_job_id(str(id).split(":", 1)[0]):  # RQ accepts "id:execution" here
            log.error("skipped the job id %s: it is not a job id", shown(id))
            raise NoSuchJobError(f"{shown(id)} is not a job id")
        return super().fetch(id, connection, serializer)

    @classmethod
    def fetch_many(
        cls, job_ids: Any, connection: redis.Redis, serializer: Any = None
    ) -> list[Job | None]:
        """RQ's; an id RQ cannot build a job for is a missing job (None), as in :meth:`fetch`."""
        ids = list(job_ids)
        valid = [job_id for job_id in ids if is_job_id(str(job_id).split(":", 1)[0])]
        found = iter(super().fetch_many(valid, connection, serializer) if valid else [])
        return [next(found) if job_id in valid else None for job_id in ids]

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
        return step_call(self, partial(_run_logged, registry, declared, self))

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

    def refresh(self) -> None:
        """RQ's refresh; a job key that is not a hash is skipped like a missing one.

        RQ lets Redis's WRONGTYPE error through, and a bare worker then quits.
        """
        try:
            super().refresh()  # type: ignore[no-untyped-call]
        except redis.ResponseError as error:
            if "WRONGTYPE" not in str(error):
                raise
            log.error("skipped job %s: its key %s holds no job hash", self.id, self.key)
            raise NoSuchJobError(f"{self.key} is not a job hash") from None

    def restore(self, raw_data: Any) -> None:
        """Read a job hash; an unreadable or incomplete one becomes a job that is refused.

        RQ raises from here on, say, a bad ``created_at`` (and a bare worker then quits
        with the valid jobs behind that entry never run), drops a hash without ``data``
        silently, and runs one without ``origin``.
        """
        try:
            super().restore(raw_data)
        except Exception as error:
            salvaged = _salvaged(raw_data, self.serializer)
            self._taskkit_malformed = (
                "it has no 'data' field"  # RQ says NoSuchJobError for that
                if isinstance(error, NoSuchJobError)
                else self._unreadable_field(raw_data, salvaged) or _describe(error)
            )
            super().restore(salvaged)
            return
        if not raw_data.get(b"origin", raw_data.get("origin")):
            self._taskkit_malformed = "it has no 'origin' field"

    def _unreadable_field(
        self, raw_data: Mapping[Any, Any], salvaged: dict[str, Any]
    ) -> str | None:
        """The first field RQ cannot read, tried one at a time over the salvaged ones."""
        for key, value in raw_data.items():
            name = _field_name(key)
            if name in salvaged:
                continue
            try:
                super().restore({**salvaged, name: value})
            except Exception as error:
                return f"field {name!r} cannot be read: {_describe(error)}"
        return None

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


def _salvaged(raw_data: Mapping[Any, Any], serializer: Any) -> dict[str, Any]:
    """The fields RQ needs to fail an entry, where they can be read."""
    fields = {_field_name(key): value for key, value in raw_data.items()}
    kept: dict[str, Any] = {"data": fields.get("data") or serializer.dumps(_NO_DATA)}
    for name in ("origin", "description"):
        value = fields.get(name)
        try:
            if isinstance(value, bytes):
                value.decode()
        except UnicodeDecodeError:
            continue
        if value:
            kept[name] = value
    return kept


def _field_name(key: Any) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


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
    registry: Registry, declared: DeclaredJob, job: Job, /, *args: Any, **kwargs: Any
) -> Any:
    """Run the job under its context policy and log one line: name, queue, time, outcome.

    The first three parameters are positional-only, so that a job may have parameters of
    any name (``job``, ``registry``) among the keyword arguments RQ passes on. The facts
    are also record attributes (see :mod:`taskkit.logs`), for JSON logs.
    """
    started = time.perf_counter()
    try:
        result = registry.call(declared, args, kwargs, partial(_log_teardown_error, declared, job))
    except BaseException as error:
        _log_failure(declared, job, (time.perf_counter() - started) * 1000, error)
        raise
    elapsed = (time.perf_counter() - started) * 1000
    outcome = _horse_outcome
    if outcome is not None and outcome.worker_pid != os.getpid():
        outcome.put(elapsed)  # a work horse: its worker writes the line (see _HorseOutcome)
    elif log.isEnabledFor(logging.INFO):
        _log_ok(declared, job, elapsed)
    return result


def _log_failure(declared: DeclaredJob, job: Job, elapsed: float, error: BaseException) -> None:
    """``... failed: Error: text``, or ``... failed, retry 1/3 in 10s: ...`` for an attempt
    that RQ will retry (that one is not a failure of the job, only of the attempt)."""
    failure = logs.escape_controls(f"{type(error).__name__}: {error}")
    retry = _retry_note(declared, job)
    log.warning(
        "%s queue=%s id=%s %.1fms failed%s: %s",
        declared.name,
        declared.settings.queue,
        job.id,
        elapsed,
        f", {retry}" if retry else "",
        failure,
        extra=_facts(declared, job, elapsed, "retried" if retry else "failed", failure),
    )


def _retry_note(declared: DeclaredJob, job: Job) -> str | None:
    """``retry 1/3 in 10s`` if RQ will retry this attempt, else None."""
    if not job.should_retry:
        return None
    most = declared.settings.retry.max
    number = most - int(job.retries_left or 0) + 1
    interval = job.get_retry_interval()
    return f"retry {number}/{most} {f'in {interval}s' if interval else 'at once'}"


def _log_teardown_error(declared: DeclaredJob, job: Job, error: Exception) -> None:
    log.error(
        "%s queue=%s id=%s: a teardown handler raised %s after the job ended; the job keeps "
        "its outcome and is not retried for it",
        declared.name,
        declared.settings.queue,
        job.id,
        logs.escape_controls(f"{type(error).__name__}: {error}"),
        exc_info=error,
        extra={
            "job": declared.name,
            "queue": declared.settings.queue,
            "job_id": job.id,
            "outcome": "teardown_failed",
        },
    )


def _log_ok(declared: DeclaredJob, job: Job, elapsed: float) -> None:
    log.info(
        "%s queue=%s id=%s %.1fms ok",
        declared.name,
        declared.settings.queue,
        job.id,
        elapsed,
        extra=_facts(declared, job, elapsed, "ok"),
    )


class _HorseOutcome:
    """A page of memory a forking worker shares with its work horses: "returned, in N ms".

    Writing the job's line in a freshly forked horse costs it about half a millisecond,
    nearly all copy-on-write page faults on the logging machinery's objects
    (benchmarks/profile_fork.py); the worker, whose pages are its own, writes the same
    line in microseconds. So the horse of a job that returned leaves its run time here and
    the worker writes the line after the horse exits, with no Redis round trip. A failure
    is still logged by the horse itself, with its error.
    """

    _RECORD = struct.Struct("=?d")  # the job returned; its run time in ms

    def __init__(self) -> None:
        self.worker_pid = os.getpid()
        self._page = mmap.mmap(-1, mmap.PAGESIZE)  # MAP_SHARED: forked children write here

    def clear(self) -> None:
        self._RECORD.pack_into(self._page, 0, False, 0.0)

    def put(self, elapsed: float) -> None:
        self._RECORD.pack_into(self._page, 0, True, elapsed)

    def take(self) -> float | None:
        returned, elapsed = self._RECORD.unpack_from(self._page, 0)
        return float(elapsed) if returned else None


# The page of the horse a TaskkitForkWorker of this process is running, if any: set before
# the fork, so the horse inherits it.
_horse_outcome: _HorseOutcome | None = None


class TaskkitForkWorker(workers.TaskkitWorker):
    """The forking worker; it writes the line of each job its horse ran (_HorseOutcome)."""

    _outcome: _HorseOutcome | None = None

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in a work horse; then, if the job returned, log its line."""
        global _horse_outcome  # noqa: PLW0603 - read by the horse, a fork of this process
        if self._outcome is None or self._outcome.worker_pid != os.getpid():
            self._outcome = _HorseOutcome()  # per process: a pool forks its workers
        outcome = self._outcome
        outcome.clear()
        _horse_outcome = outcome
        try:
            super().execute_job(job, queue)
        finally:
            _horse_outcome = None
        elapsed = outcome.take()
        if elapsed is not None and isinstance(job, TaskkitJob) and log.isEnabledFor(logging.INFO):
            declared, _ = _declared_job(TaskkitJob.worker_registry(), job)
            if declared is not None:
                _log_ok(declared, job, elapsed)


def _worker_class(name: WorkerClassName) -> type[BaseWorker]:
    return TaskkitForkWorker if name == "fork" else WORKER_CLASSES[name]


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
        logs.escape_controls(job.origin),
        logs.escape_controls(reason),
        extra={"queue": job.origin, "job_id": job.id, "outcome": "refused", "error": reason},
    )


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
    workers.use_settings(settings or registry.config.worker)
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
    then the worker exits; a second one stops it at once (see :mod:`taskkit.workers`).

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
            workers.wait_for_redis(registry.connection, settings.redis_timeout)
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
) -> workers.TaskkitWorkerPool:
    return workers.TaskkitWorkerPool(
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


__all__ = [
    "WORKER_CLASSES",
    "TaskkitJob",
    "TaskkitSpawnWorker",
    "make_worker",
    "prepare_process",
    "run_worker",
]
