"""The declared jobs, resolved to callables, and the enqueue API.

``load()`` returns the :class:`Registry` of a jobs.yaml, which :mod:`taskkit.loader`
read, resolved and cached. Enqueueing checks the arguments in the caller's process, so
a mistake fails where it is made, not later in a worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer, PickleSerializer

from taskkit import after_commit, connection, sending, tracing
from taskkit.bulk import Batch, Plan
from taskkit.config import SecretUrl, TaskkitConfig, did_you_mean
from taskkit.context import ProcessApp, TeardownErrorHandler
from taskkit.context import run as run_in_context
from taskkit.declared import WIRES, DeclaredJob, check_serializable
from taskkit.eager import EagerJobs
from taskkit.errors import UnknownJobError
from taskkit.limits import concurrency_limit
from taskkit.loader import LoadedConfig, default_config_path
from taskkit.loader.cache import LoadCache
from taskkit.loader.resolution import resolve
from taskkit.redaction import describe_call
from taskkit.timing import assume_utc

if TYPE_CHECKING:

    from taskkit.eager import EagerJob
    from taskkit.workflows.runs import Run, WorkflowRun

T = TypeVar("T")

META_KEY = "taskkit_job"
"""The job meta field that names the declared job, so shared callables stay apart."""


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
        self.eager_jobs = EagerJobs()
        """The jobs this registry ran eagerly lately (for fetch), and unique keys they hold."""
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
                return sending.after_commit_send(
                    self,
                    session, declared, call_args, call_kwargs, at=at, eagerly=eagerly
                )
        if eagerly:
            holder = self.eager_jobs.holder(declared, call_args, call_kwargs)
            return holder or self._run_eagerly(declared, call_args, call_kwargs)
        limit = concurrency_limit(declared, call_args, call_kwargs)
        job = self._create(declared, call_args, call_kwargs, rate_limit=limit)
        return sending.dispatch(self, declared, job, call_args, call_kwargs, at=at, limit=limit)

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
        if any(sending.one_by_one(self.job(name)) for name, _, _ in calls):
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
            wire = WIRES[self.config.serializer]
            plan = Plan(
                declared,
                self.queue(declared.settings.queue),
                self._create(declared, (), {}, traced=False),
                lambda args, kwargs: check_serializable(declared, args, kwargs, wire),
            )
            self._plans[name] = plan
        return plan

    def _write(self, doing: str, action: Callable[[], T]) -> T:
        """Run a write; Redis errors become one :class:`RedisUnavailableError`."""
        return connection.write(self.redis_url, doing, action)

    def _prepare(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[DeclaredJob, tuple[Any, ...], dict[str, Any]]:
        declared = self.job(name)
        declared.bind(args, kwargs)
        check_serializable(declared, args, kwargs, WIRES[self.config.serializer])
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
        return self.eager_jobs.run(self, declared, args, kwargs, job=job)

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
            return self.eager_jobs.get(job_id)

        def read() -> Job | None:
            try:
                return Job.fetch(job_id, connection=self.connection, serializer=self.serializer)
            except (NoSuchJobError, ValueError):  # ValueError: not a valid RQ job id
                return None

        return connection.call(self.redis_url, "fetch a job", read)

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
