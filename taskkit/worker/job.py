"""The job class: an RQ job that runs only what jobs.yaml declares, in its context.

RQ stays in charge of dequeueing, timeouts, retries, registries and results; taskkit only
decides *what* a dequeued job may call. ``TaskkitJob.func`` resolves the job against
jobs.yaml instead of importing whatever name the Redis entry holds, so a forged or stale
entry is failed with a reason and nothing is imported or called for it. The same goes for
the callbacks an entry may name, and an entry whose hash cannot be read fails alone
instead of stopping the worker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar, NoReturn

import redis
from redis.client import Pipeline
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job

from taskkit import logs
from taskkit.errors import UndeclaredJobError
from taskkit.flow import jittered
from taskkit.registry import META_KEY, DeclaredJob, Registry, load
from taskkit.worker.joblog import _log_refusal, _run_logged
from taskkit.worker.queue import is_job_id, shown
from taskkit.workflows.steps import step_call, upstream_unfinished

log = logging.getLogger("taskkit.worker")

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
    _taskkit_no_retry: str | None = None  # why this attempt's exception is not retried
    _taskkit_wait: tuple[int, int] | None = None  # (retries_left, jittered wait)

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
        # A workflow step gets its upstream results, or is skipped (taskkit.workflows.steps).
        return step_call(self, partial(_run_logged, registry, declared, self))

    def _refuse(self, reason: str) -> NoReturn:
        self._taskkit_refusal = reason
        # A refused entry gets no retries and sends none of the webhooks it names.
        self.webhooks = []
        _log_refusal(self, reason)
        raise UndeclaredJobError(f"refused job {self.id}: {reason}")

    @property
    def should_retry(self) -> bool:
        """RQ's retry rule, except that a refused entry is never retried, nor an exception
        that jobs.yaml's ``discard_on`` or ``retry.on`` rule out."""
        if self._taskkit_refusal is not None or self._taskkit_no_retry is not None:
            return False
        return bool(super().should_retry)

    def get_retry_interval(self) -> int:
        """RQ's wait before the next retry, jittered if the job's backoff says so.

        RQ stores one list of waits per job; the jitter is drawn here, once per attempt
        (RQ asks twice: for the log line and for the retry), so that jobs that failed
        together are retried apart.
        """
        wait = int(super().get_retry_interval())
        declared, _ = _declared_job(self.worker_registry(), self)
        if declared is None or not declared.flow.jitter or not wait:
            return wait
        left = int(self.retries_left or 0)
        if self._taskkit_wait is None or self._taskkit_wait[0] != left:
            self._taskkit_wait = (left, max(1, round(jittered(wait))))
        return self._taskkit_wait[1]

    def dependencies_are_met(
        self,
        parent_job: Job | None = None,
        pipeline: Pipeline | None = None,
        exclude_job_id: str | None = None,
        refresh_job_status: bool = True,
    ) -> bool:
        """RQ's check, which reads every upstream job each time one of them ends, except
        that a workflow fan-in first reads one still pending (taskkit.workflows.steps):
        N reads per fan-out of N instead of N²."""
        if upstream_unfinished(self, parent_job, pipeline, exclude_job_id):
            return False
        return super().dependencies_are_met(
            parent_job, pipeline, exclude_job_id, refresh_job_status
        )

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
