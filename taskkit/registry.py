"""The declared jobs, resolved to callables, and the enqueue API.

``load()`` returns the :class:`Registry` of a jobs.yaml, which :mod:`taskkit.loader`
read, resolved and cached. Enqueueing checks the arguments in the caller's process, so
a mistake fails where it is made, not later in a worker.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from rq import Queue, RateLimit, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer, PickleSerializer

from taskkit import after_commit, connection, limits, tracing
from taskkit.bulk import Batch, Plan
from taskkit.config import EffectiveJob, SecretUrl, TaskkitConfig, did_you_mean
from taskkit.context import ProcessApp, TeardownErrorHandler
from taskkit.context import run as run_in_context
from taskkit.errors import JobArgumentsError, RedisUnavailableError, UnknownJobError
from taskkit.flow import FlowPolicy
from taskkit.limits import concurrency_limit
from taskkit.loader import LoadedConfig, default_config_path
from taskkit.loader.cache import LoadCache
from taskkit.loader.resolution import Mismatch, resolve
from taskkit.redaction import describe_call
from taskkit.timing import assume_utc
from taskkit.uniqueness import enqueue_unique

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from taskkit.eager import EagerJob
    from taskkit.workflows.runs import Run, WorkflowRun

T = TypeVar("T")

META_KEY = "taskkit_job"
"""The job meta field that names the declared job, so shared callables stay apart."""
EAGER_JOBS_KEPT = 1000
"""How many of its eager jobs a registry keeps for :meth:`Registry.fetch`."""


@dataclass(frozen=True)
class DeclaredJob:
    """A job from jobs.yaml with its callable resolved and its signature known."""

    settings: EffectiveJob
    func: Callable[..., Any]
    signature: inspect.Signature | None

    @property
    def name(self) -> str:
        """The job's name in jobs.yaml."""
        return self.settings.name

    def bind(self, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`JobArgumentsError` unless the arguments fit the callable."""
        if self.signature is None:
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            mismatch = Mismatch.of(self.signature, kwargs, error)
            fix = mismatch.hint or "pass the arguments it takes"
            raise JobArgumentsError(
                f"job {self.name!r}: {mismatch.message} "
                f"(the callable is {self.settings.func}{self.signature}); {fix}"
            ) from None

    @property
    def retry(self) -> Retry | None:
        """The declared retry policy as RQ's :class:`rq.Retry`."""
        policy = self.settings.retry
        if policy.max <= 0:
            return None
        return Retry(max=policy.max, interval=policy.waits() or 0)

    @cached_property
    def flow(self) -> FlowPolicy:
        """Its flow control (retry filters, unique and limit keys), resolved on first use."""
        return FlowPolicy(self.settings, self.signature)


class Registry:
    """Every declared job and queue of one jobs.yaml, and the way to enqueue them."""

    def __init__(self, loaded: LoadedConfig, jobs: dict[str, DeclaredJob]) -> None:
        self.loaded = loaded
        self.jobs = jobs
        self.process_app = ProcessApp(loaded.config.app)
        self._eager: bool | None = None
        self._connection: redis.Redis | None = None
        self._queues: dict[str, Queue] = {}
        self._plans: dict[str, Plan] = {}
        self._by_func: dict[str, list[DeclaredJob]] = {}
        self._eager_jobs: dict[str, Job] = {}  # for fetch(), oldest first
        self._eager_holders: dict[str, Job] = {}  # unique key -> eager job holding it
        for job in jobs.values():
            self._by_func.setdefault(job.settings.rq_func_name, []).append(job)

    @property
    def eager(self) -> bool:
        """Whether enqueueing runs jobs at once: set explicitly, else ``$TASKKIT_EAGER``.

        The variable is read at every enqueue, not once at load time, because the
        registry is cached per process and tests often set it after the first load.
        """
        if self._eager is not None:
            return self._eager
        return _env_flag("TASKKIT_EAGER")

    @eager.setter
    def eager(self, value: bool | None) -> None:
        """``True``/``False`` force eager mode on or off; ``None`` goes back to the variable."""
        self._eager = value

    @property
    def eager_setting(self) -> bool | None:
        """Eager mode as set on this registry; None when ``$TASKKIT_EAGER`` decides."""
        return self._eager

    @property
    def config(self) -> TaskkitConfig:
        """The validated jobs.yaml."""
        return self.loaded.config

    @property
    def path(self) -> Path:
        """The jobs.yaml this registry was loaded from."""
        return self.loaded.path

    @cached_property
    def has_rate_limits(self) -> bool:
        """Whether any declared job has ``rate_limit:`` (a worker checks those only)."""
        return any(job.settings.rate_limit is not None for job in self.jobs.values())

    @property
    def serializer(self) -> type[JSONSerializer] | type[PickleSerializer]:
        """JSON unless jobs.yaml opts in to pickle."""
        return PickleSerializer if self.config.serializer == "pickle" else JSONSerializer

    @property
    def redis_url(self) -> SecretUrl:
        """The Redis URL in use: ``$TASKKIT_REDIS_URL`` if set, else jobs.yaml's redis.url."""
        return connection.effective_url(self.config.redis.url)

    @property
    def connection(self) -> redis.Redis:
        """The Redis client (created on first use; nothing is sent until needed)."""
        if self._connection is None:
            self._connection = connection.connect(self.redis_url)
        return self._connection

    @connection.setter
    def connection(self, value: redis.Redis) -> None:
        self.swap_connection(value)

    def swap_connection(self, client: redis.Redis | None) -> redis.Redis | None:
        """Use ``client`` from now on (None: one made from :attr:`redis_url` on first use);
        returns the client used before, or None if none was made yet."""
        before, self._connection = self._connection, client
        self._queues.clear()
        self._plans.clear()  # they hold queues (and a template job) bound to the old client
        return before

    def queue(self, name: str) -> Queue:
        """The RQ queue called ``name`` (plain RQ, with this registry's serializer)."""
        queue = self._queues.get(name)
        if queue is None:
            queue = Queue(name, connection=self.connection, serializer=self.serializer)
            self._queues[name] = queue
        return queue

    @property
    def queue_names(self) -> list[str]:
        """Queue names in priority order."""
        return self.config.queue_names

    def job(self, name: str) -> DeclaredJob:
        """The declared job called ``name``; :class:`UnknownJobError` if there is none."""
        try:
            return self.jobs[name]
        except KeyError:
            close = did_you_mean(name, list(self.jobs))
            fix = f"did you mean {close!r}?" if close else f"declare it under jobs: in {self.path}"
            raise UnknownJobError(f"no job named {name!r} in {self.path}; {fix}") from None

    def declared_for(self, func_name: str | None, meta_name: Any) -> DeclaredJob | None:
        """The declared job a job found in Redis stands for, or None if it names nothing."""
        if isinstance(meta_name, str):
            job = self.jobs.get(meta_name)
            return job if job is not None and job.settings.rq_func_name == func_name else None
        candidates = self.jobs_calling(func_name)
        return candidates[0] if len(candidates) == 1 else None

    def jobs_calling(self, func_name: str | None) -> list[DeclaredJob]:
        """The declared jobs whose callable RQ knows as ``func_name`` (``pkg.mod.func``)."""
        return self._by_func.get(func_name or "", [])

    # -- enqueue ---------------------------------------------------------------------

    def enqueue(self, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Put job ``name`` on its queue; returns the plain :class:`rq.job.Job`.

        The job carries its declared queue, timeout, TTLs, retry and description.
        Raises :class:`UnknownJobError` for an undeclared name, :class:`JobArgumentsError`
        when the arguments do not fit the callable or cannot be serialized, and
        :class:`RedisUnavailableError` when Redis cannot be reached.
        In eager mode (:attr:`eager`) the job runs at once instead; see :meth:`run_now`.
        """
        return self.submit(name, args, kwargs)

    def enqueue_in(self, delay: timedelta, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Run job ``name`` after ``delay``; it waits in RQ's ScheduledJobRegistry.

        Any ``taskkit run-worker`` (not in ``--burst`` mode) moves it to its queue on
        time. In eager mode it runs at once, as Celery's eager mode does with countdowns.
        """
        return self.submit(name, args, kwargs, at=datetime.now(UTC) + delay)

    def enqueue_at(self, when: datetime, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Run job ``name`` at ``when`` (naive datetimes count as UTC); see :meth:`enqueue_in`."""
        return self.submit(name, args, kwargs, at=assume_utc(when))

    def submit(
        self,
        name: str,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
        eager: bool | None = None,
    ) -> Job:
        """Enqueue with the arguments as a sequence and a mapping (the explicit form).

        ``at`` schedules the job for that time; ``eager`` overrides :attr:`eager` for this
        call (the Flask extension passes its own setting).
        """
        declared, call_args, call_kwargs = self._prepare(name, tuple(args), dict(kwargs or {}))
        eagerly = self.eager if eager is None else eager
        if declared.settings.enqueue == "after_commit":
            session = after_commit.open_session()
            if session is not None:
                return self._after_commit(
                    session, declared, call_args, call_kwargs, at=at, eagerly=eagerly
                )
        if eagerly:
            holder = self._eager_holder(declared, call_args, call_kwargs)
            return holder or self._run_eagerly(declared, call_args, call_kwargs)
        limit = concurrency_limit(declared, call_args, call_kwargs)
        job = self._create(declared, call_args, call_kwargs, rate_limit=limit)
        return self._dispatch(declared, job, call_args, call_kwargs, at=at, limit=limit)

    def _after_commit(
        self,
        session: Session,
        declared: DeclaredJob,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        at: datetime | None,
        eagerly: bool,
    ) -> Job:
        """The job, sent (or run, eagerly) when ``session`` commits; never if it rolls back.

        The job returned is the one that will be sent, with its id (a unique job's
        duplicate found at commit time is not sent, and its holder is not returned).
        """
        if eagerly:
            from taskkit.eager import new_job

            holder = self._eager_holder(declared, args, kwargs)
            if holder is not None:
                return holder
            waiting = new_job(declared, args, kwargs)
            key = declared.flow.unique_key(args, kwargs)
            if key is not None:  # it holds its key while it waits for the commit
                self._eager_holders[key] = waiting
            after_commit.defer(
                session,
                lambda: self._run_eagerly(declared, args, kwargs, job=waiting),
                lambda: self._eager_holders.pop(key or "", None),
            )
            return waiting
        limit = concurrency_limit(declared, args, kwargs)
        job = self._create(declared, args, kwargs, rate_limit=limit)
        after_commit.defer(
            session, lambda: self._dispatch(declared, job, args, kwargs, at=at, limit=limit)
        )
        return job

    def _dispatch(
        self,
        declared: DeclaredJob,
        job: Job,
        call_args: tuple[Any, ...],
        call_kwargs: dict[str, Any],
        *,
        at: datetime | None,
        limit: RateLimit | None,
    ) -> Job:
        """Send a created job: unique, limited, scheduled or plain."""
        name = declared.name
        queue = self.queue(declared.settings.queue)
        key = declared.flow.unique_key(call_args, call_kwargs)
        if key is not None:
            return self._write(
                f"enqueue {name!r}",
                lambda: self._enqueue_unique(declared, queue, job, key, at=at, limit=limit),
            )
        if at is None and limit is not None:
            # RQ refuses a limited job in a pipeline: it promotes it in a second call.
            return self._write(f"enqueue {name!r}", lambda: queue.enqueue_job(job))
        if at is None:
            return self._send(f"enqueue {name!r}", [(queue, job)])[0]
        return self._write(f"schedule {name!r}", lambda: queue.schedule_job(job, at))

    def _enqueue_unique(
        self,
        declared: DeclaredJob,
        queue: Queue,
        job: Job,
        key: str,
        *,
        at: datetime | None,
        limit: RateLimit | None,
    ) -> Job:
        """A unique job's claim; one over a concurrency limit waits in its key's set."""
        unique = declared.settings.unique
        assert unique is not None
        if limit is None or at is not None:  # RQ's scheduler holds a due limited job back
            return enqueue_unique(queue, job, key, unique.while_, at=at)
        limits.register(self.connection, limit)
        held_in = limits.waiting_set(self.connection, limit)
        sent = enqueue_unique(queue, job, key, unique.while_, held_in=held_in)
        limits.promote(self.connection, limit)  # the job's status in Redis tells the outcome
        return sent

    def run_now(self, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Run job ``name`` in this process, as eager mode does, and return the finished job.

        The arguments are checked and sent through a serializer round trip as for a real
        enqueue; the job runs in the caller's active app context if there is one.
        The job's exception, if any, propagates.
        """
        declared, args, kwargs = self._prepare(name, args, kwargs)
        return self._run_eagerly(declared, args, kwargs)

    def start_workflow(self, name: str, /, **inputs: Any) -> Run:
        """Start a run of workflow ``name``; returns it (``.id``, ``.status()``, ``.results()``).

        Every step's jobs are checked and enqueued at once, in one transaction, on RQ's
        dependencies; see :mod:`taskkit.workflows`. In eager mode (:attr:`eager`) the whole
        workflow runs now, step after step, in this process.
        """
        return self.submit_workflow(name, inputs)

    def submit_workflow(
        self, name: str, inputs: Mapping[str, Any], *, eager: bool | None = None
    ) -> Run:
        """:meth:`start_workflow` with a mapping of inputs; ``eager`` overrides :attr:`eager`."""
        from taskkit.workflows import eager as eager_runs
        from taskkit.workflows import runs

        if self.eager if eager is None else eager:
            return eager_runs.run_workflow(self, name, dict(inputs))
        return runs.start(self, name, dict(inputs))

    def workflow_run(self, run_id: str) -> WorkflowRun:
        """The run ``run_id`` (read from Redis); :class:`WorkflowError` if it is gone."""
        from taskkit.workflows import runs

        return runs.fetch(self, run_id)

    def enqueue_many(
        self, calls: Iterable[tuple[str, Iterable[Any], Mapping[str, Any]]]
    ) -> list[Job]:
        """Enqueue many ``(name, args, kwargs)`` calls in one Redis round trip.

        Every call is checked before anything is sent, so one bad call enqueues nothing.
        The jobs are those :meth:`enqueue` makes, field for field, built from one template
        per job name (see :mod:`taskkit.bulk`), which makes a batch several times cheaper
        per job than single enqueues.
        """
        if self.eager:
            prepared = [self._prepare(n, tuple(a), dict(k)) for n, a, k in calls]
            return [self.submit(declared.name, a, k, eager=True) for declared, a, k in prepared]
        calls = list(calls)
        if any(_one_by_one(self.job(name)) for name, _, _ in calls):
            # A unique job's claim is its own transaction, RQ promotes a limited job in a
            # call of its own, and an after_commit job may wait for a commit: such a batch
            # goes job by job, every call checked first.
            checked = [self._prepare(n, tuple(a), dict(k)) for n, a, k in calls]
            return [self.submit(d.name, a, k, eager=False) for d, a, k in checked]
        batch = Batch()
        for name, args, kwargs in calls:
            batch.add(self._plan(name), tuple(args), dict(kwargs))
        with tracing.batch_trace(len(batch)) as trace:  # one producer span for the batch
            return self._write("enqueue jobs", lambda: batch.send(self.connection, trace))

    def _plan(self, name: str) -> Plan:
        """The bulk template of job ``name``, made on first use by RQ's own ``create_job``."""
        plan = self._plans.get(name)
        if plan is None:
            declared = self.job(name)
            wire = _WIRES[self.config.serializer]
            plan = Plan(
                declared,
                self.queue(declared.settings.queue),
                self._create(declared, (), {}, traced=False),
                lambda args, kwargs: _check_serializable(declared, args, kwargs, wire),
            )
            self._plans[name] = plan
        return plan

    def _send(self, doing: str, pairs: list[tuple[Queue, Job]]) -> list[Job]:
        """Enqueue ``(queue, job)`` pairs in one pipeline: one round trip, however many.

        The pipeline is a MULTI/EXEC transaction: Redis applies all of it or none.
        """

        def send() -> list[Job]:
            with self.connection.pipeline() as pipe:
                jobs = [queue.enqueue_job(job, pipeline=pipe) for queue, job in pairs]
                pipe.execute()
            return jobs

        return self._write(doing, send)

    def _write(self, doing: str, action: Callable[[], T]) -> T:
        """Run a write; Redis errors become one :class:`RedisUnavailableError`.

        An unreachable Redis is reported by :func:`taskkit.connection.call`; a Redis that
        refuses the write (out of memory, a read-only replica) is reported here, without
        redis-py's echo of the commands, which would show the job's arguments.
        """
        try:
            return connection.call(self.redis_url, doing, action)
        except redis.ResponseError as error:
            reason = str(error).rsplit("caused error: ", 1)[-1].splitlines()[0].rstrip(".")
            raise RedisUnavailableError(
                f"cannot {doing}: Redis at {connection.describe(self.redis_url)} refused the "
                f"write ({reason}); nothing was enqueued; {_write_fix(reason)}"
            ) from None

    def _prepare(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[DeclaredJob, tuple[Any, ...], dict[str, Any]]:
        declared = self.job(name)
        declared.bind(args, kwargs)
        _check_serializable(declared, args, kwargs, _WIRES[self.config.serializer])
        return declared, args, kwargs

    def _create(
        self,
        declared: DeclaredJob,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        traced: bool = True,
        **options: Any,
    ) -> Job:
        """The job RQ would enqueue; ``options`` (RQ's ``create_job`` keywords) win."""
        settings = declared.settings
        job = self.queue(settings.queue).create_job(
            settings.rq_func_name,
            args=args,
            kwargs=kwargs,
            **{
                "timeout": settings.timeout,
                "result_ttl": settings.result_ttl,
                "failure_ttl": settings.failure_ttl,
                # Not RQ's default call string: it shows every argument, secrets included,
                # in rq-dashboard and in Sentry events.
                "description": settings.description
                or describe_call(settings.name, args, kwargs, declared.signature),
                "retry": declared.retry,
                "meta": {META_KEY: settings.name},
                **options,
            },
        )
        if traced:  # every job enqueued, scheduled or fired comes here (not bulk templates)
            tracing.start_trace(job, settings.name, settings.queue)
        return job

    def _run_eagerly(
        self,
        declared: DeclaredJob,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        job: EagerJob | None = None,
    ) -> Job:
        from taskkit.eager import new_job, run_eagerly

        key = declared.flow.unique_key(args, kwargs)
        unique = declared.settings.unique
        if job is None:
            job = new_job(declared, args, kwargs)
        if key is not None and unique is not None and unique.while_ == "queued_or_running":
            self._eager_holders[key] = job
        elif key is not None:
            self._eager_holders.pop(key, None)  # it no longer waits
        try:
            job = run_eagerly(self, declared, args, kwargs, job=job)
        finally:
            if key is not None and self._eager_holders.get(key) is job:
                del self._eager_holders[key]
        self._remember_eager(job)
        return job

    # -- job handles -----------------------------------------------------------------

    def fetch(self, job_id: str, *, eager: bool | None = None) -> Job | None:
        """The job ``job_id``, read with this registry's connection and serializer.

        None when Redis holds no such job (never enqueued, or gone after its
        ``result_ttl``/``failure_ttl``) or ``job_id`` is not a job id at all, so a web view
        can answer 404. RQ's own ``Job.fetch`` reads with pickle unless told otherwise,
        and shows a JSON job's meta as ``{'unserialized': ...}``. In eager mode the jobs
        this process ran recently are found in memory (no Redis needed); ``eager``
        overrides :attr:`eager` as in :meth:`submit`. Progress: :func:`taskkit.progress_of`.
        """
        if self.eager if eager is None else eager:
            return self._eager_jobs.get(job_id)

        def read() -> Job | None:
            try:
                return Job.fetch(job_id, connection=self.connection, serializer=self.serializer)
            except (NoSuchJobError, ValueError):  # ValueError: not a valid RQ job id
                return None

        return connection.call(self.redis_url, "fetch a job", read)

    def _eager_holder(
        self, declared: DeclaredJob, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Job | None:
        """In eager mode, the job holding this call's unique key: one waiting for a commit,
        or, with ``while: queued_or_running``, one running (a job that enqueues itself)."""
        if not self._eager_holders or declared.settings.unique is None:
            return None
        key = declared.flow.unique_key(args, kwargs)
        return None if key is None else self._eager_holders.get(key)

    def _remember_eager(self, job: Job) -> None:
        self._eager_jobs[job.id] = job
        while len(self._eager_jobs) > EAGER_JOBS_KEPT:
            del self._eager_jobs[next(iter(self._eager_jobs))]

    def call(
        self,
        declared: DeclaredJob,
        args: Any,
        kwargs: dict[str, Any],
        on_teardown_error: TeardownErrorHandler | None = None,
    ) -> Any:
        """Run a declared job's callable under its context policy, in this process.

        An ``async def`` job is run to completion inside its context; an exception from a
        teardown handler goes to ``on_teardown_error`` and leaves the job's outcome alone.
        """
        return run_in_context(
            declared.settings.context,
            declared.func,
            args,
            kwargs,
            self.process_app,
            on_teardown_error=on_teardown_error,
        )


@dataclass(frozen=True)
class _Wire:
    """How arguments travel to the worker, and what to tell a caller whose don't."""

    name: str
    dumps: Callable[[Any], Any]
    fix: str


_WIRES = {
    "json": _Wire(
        "JSON",
        json.dumps,
        "pass plain data (ids, strings, numbers, lists, dicts), "
        "or set serializer: pickle in jobs.yaml",
    ),
    "pickle": _Wire(
        "pickle", pickle.dumps, "pass plain data (ids, strings, numbers) or picklable objects"
    ),
}


def _check_serializable(
    declared: DeclaredJob, args: tuple[Any, ...], kwargs: dict[str, Any], wire: _Wire
) -> None:
    """Raise :class:`JobArgumentsError` naming the first argument the serializer rejects."""
    try:
        wire.dumps([args, kwargs])
    except Exception:  # each serializer raises its own kinds: find the culprit below
        pass
    else:
        return
    labelled = [(f"argument {i + 1}", value) for i, value in enumerate(args)]
    labelled += [(f"argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in labelled:
        try:
            wire.dumps(value)
        except Exception as error:
            raise JobArgumentsError(
                f"job {declared.name!r}: {label} ({type(value).__name__}) cannot be sent as "
                f"{wire.name} ({type(error).__name__}: {error}); {wire.fix}"
            ) from None
    raise JobArgumentsError(
        f"job {declared.name!r}: the arguments cannot be sent as {wire.name}; {wire.fix}"
    )


def _write_fix(reason: str) -> str:
    if "maxmemory" in reason or reason.startswith("OOM"):
        return "free memory in Redis (failed and finished jobs, result_ttl) or raise maxmemory"
    if reason.startswith("READONLY"):
        return "point redis.url at the primary, not at a replica"
    return "check the Redis server's log and settings"


def _one_by_one(declared: DeclaredJob) -> bool:
    """Whether a batch with this job must be sent job by job."""
    settings = declared.settings
    return (
        settings.unique is not None
        or settings.concurrency is not None
        or settings.enqueue == "after_commit"
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# -- loading -----------------------------------------------------------------------------


def _build(file: Path) -> Registry:
    loaded, resolved = resolve(file)
    jobs = {name: DeclaredJob(r.settings, r.func, r.signature) for name, r in resolved.items()}
    return Registry(loaded, jobs)


_registries: LoadCache[Registry] = LoadCache(_build)


def load(path: str | os.PathLike[str] | None = None, *, cached: bool = True) -> Registry:
    """Load and validate a jobs.yaml (default ``$TASKKIT_CONFIG``, else ``./jobs.yaml``).

    Every ``func`` is imported and checked; every problem is reported at once as a
    :class:`ConfigError`. With ``cached`` (the default), loading the same unchanged file
    again in this process returns the same registry, so an app factory that loads
    jobs.yaml inside a worker that already did costs nothing.
    """
    file = Path(path) if path is not None else default_config_path()
    return _registries.load(file, cached=cached)


__all__ = [
    "META_KEY",
    "DeclaredJob",
    "Registry",
    "load",
]
