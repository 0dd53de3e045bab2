"""Enqueueing many jobs at once: RQ's job hash built once per job name, then filled in.

Enqueued one by one, most of a job's cost is RQ's generic per-job work: building a
:class:`rq.job.Job` (``Job.create``, resolving the serializer), turning it into a hash
(``Job.to_dict``), describing the call, and queueing four commands per job. In a batch
the same few job names repeat, and for one name everything in the job's hash except its
id, timestamps, arguments and description is the same. So a :class:`Plan` asks RQ once
per name for a template job and the hash RQ would store for it, and each call only fills
in the fields that differ: Redis gets exactly the hash ``Queue.enqueue_job`` writes.

Nothing here talks to Redis until :meth:`Batch.send`, so a bad call found by
:meth:`Batch.add` leaves Redis untouched.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from rq import Queue
from rq.job import Job
from rq.utils import now, utcformat

from taskkit.errors import JobArgumentsError
from taskkit.redaction import REDACTED, is_secret_name, positional_names, redact
from taskkit.tracing import TRACE_KEY

if TYPE_CHECKING:
    import redis
    from redis.typing import EncodableT

    from taskkit.registry import DeclaredJob

PER_JOB_FIELDS = ("created_at", "enqueued_at", "data", "description")
"""The fields of RQ's job hash that differ between two jobs of one name (besides the key)."""

_HIDDEN = repr(REDACTED)


class Plan:
    """One declared job's template: the job and hash RQ makes for it, and cached checks.

    ``template`` must come from RQ's ``Queue.create_job`` with the options taskkit sets,
    so the hash is RQ's own; only :data:`PER_JOB_FIELDS` are replaced per call.
    ``check_serializable`` raises :class:`JobArgumentsError` naming the argument the
    serializer rejects (it is only called once serializing has failed).
    """

    def __init__(
        self,
        declared: DeclaredJob,
        queue: Queue,
        template: Job,
        check_serializable: Callable[[tuple[Any, ...], dict[str, Any]], None],
    ) -> None:
        self.declared = declared
        self.queue = queue
        self.template = template
        self._check_serializable = check_serializable
        self._dumps: Callable[[Any], bytes] = queue.serializer.dumps
        self._func_name = declared.settings.rq_func_name
        # A job's enqueued_at is set by Queue.enqueue_job; set it here so the template
        # hash has the field, in RQ's order, for each job to overwrite.
        template.enqueued_at = template.created_at
        fields = template.to_dict()
        template.enqueued_at = None
        # HSET's arguments, encoded once with the client's own encoder: the bytes redis-py
        # would send. Each job copies the list and overwrites the per-job values.
        encode: Callable[[Any], bytes] = queue.connection.get_encoder().encode
        self.items: list[EncodableT] = [encode(x) for pair in fields.items() for x in pair]
        self.slots = tuple(2 * list(fields).index(name) + 1 for name in PER_JOB_FIELDS)
        self.meta_slot = 2 * list(fields).index("meta") + 1  # the template always has meta
        self._job_class = type(template)
        self._state = dict(vars(template))
        # Lists and dicts a shallow copy would share between jobs (meta, retry intervals).
        self._mutable = [k for k, v in self._state.items() if isinstance(v, list | dict | set)]
        self._fitting_shapes: set[tuple[int, tuple[str, ...]]] = set()
        self._secret_positions: dict[int, list[bool]] = {}
        self._secret_keys: dict[str, bool] = {}

    def check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise :class:`JobArgumentsError` unless the arguments fit the callable.

        Binding depends only on how many positional arguments there are and which
        keywords are given, never on their values, so each shape is bound once.
        """
        shape = (len(args), tuple(kwargs))
        if shape not in self._fitting_shapes:
            self.declared.bind(args, kwargs)
            self._fitting_shapes.add(shape)

    def data(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The job's ``data`` field as RQ stores it; serializing it is the argument check."""
        try:
            # RQ's job tuple: (func_name, instance, args, kwargs), compressed.
            return zlib.compress(self._dumps((self._func_name, None, args, kwargs)))
        except Exception:  # each serializer raises its own kinds; name the culprit
            self._check_serializable(args, kwargs)
            raise JobArgumentsError(
                f"job {self.declared.name!r}: the arguments cannot be serialized; "
                "pass plain data (ids, strings, numbers, lists, dicts)"
            ) from None

    def describe(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """What :func:`taskkit.redaction.describe_call` returns, with the name checks cached."""
        if self.declared.settings.description:
            return self.declared.settings.description
        secret = self._secret_positions.get(len(args))
        if secret is None:
            names = positional_names(self.declared.signature, len(args))
            secret = [bool(name) and is_secret_name(name) for name in names]
            self._secret_positions[len(args)] = secret
        parts = [
            _HIDDEN if hidden else repr(redact(v)) for v, hidden in zip(args, secret, strict=True)
        ]
        for key, value in kwargs.items():
            hidden = self._secret_keys.get(key)
            if hidden is None:
                hidden = self._secret_keys[key] = is_secret_name(str(key))
            parts.append(f"{key}={_HIDDEN if hidden else repr(redact(value))}")
        return f"{self.declared.name}({', '.join(parts)})"

    def job(self, args: tuple[Any, ...], kwargs: dict[str, Any], description: str) -> Job:
        """A plain RQ job for this call: a copy of the template with its own id and arguments."""
        # What copy.copy(template) does, without its generic dispatch.
        job = self._job_class.__new__(self._job_class)
        state = vars(job)
        state.update(self._state)
        for name in self._mutable:
            state[name] = state[name].copy()
        job.id = str(uuid4())
        job.created_at = now()
        job.args = args
        job.kwargs = kwargs
        job.description = description
        return job


class Batch:
    """Checked calls waiting to be sent in one MULTI/EXEC pipeline."""

    def __init__(self) -> None:
        self._entries: list[tuple[Plan, Job, bytes, str]] = []

    def add(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Check one call and keep it; raises :class:`JobArgumentsError` for a bad call."""
        plan.check(args, kwargs)
        data = plan.data(args, kwargs)
        description = plan.describe(args, kwargs)
        self._entries.append((plan, plan.job(args, kwargs, description), data, description))

    def __len__(self) -> int:
        return len(self._entries)

    def send(self, connection: redis.Redis, trace: dict[str, str] | None = None) -> list[Job]:
        """Write every job as ``Queue.enqueue_job`` would, in one transaction; the jobs.

        Per job one HSET of the whole hash (RQ's extra HSET of ``status`` alone writes
        the value the full hash has too); per queue one SADD and one RPUSH of all its
        job ids in call order. Each command costs redis-py a Python-level pack and a
        QUEUED reply to parse: per-job RPUSHes measured ~15-20% of a batch.
        ``trace`` (see :mod:`taskkit.tracing`) goes into every job's meta.
        """
        queues = {id(plan.queue): plan.queue for plan, *_ in self._entries}
        versions = {key: queue.get_redis_server_version() for key, queue in queues.items()}
        # One transaction: every job is put on its queue at the same moment.
        enqueued_at = now()
        stamp = utcformat(enqueued_at)
        with connection.pipeline() as pipe:
            for queue in queues.values():
                pipe.sadd(queue.redis_queues_keys, queue.key)
            for plan, job, data, description in self._entries:
                items = plan.items.copy()
                created, enqueued, data_slot, description_slot = plan.slots
                items[created] = utcformat(job.created_at)
                items[enqueued] = stamp
                items[data_slot] = data
                items[description_slot] = description
                if trace is not None:
                    job.meta[TRACE_KEY] = trace
                    items[plan.meta_slot] = plan.queue.serializer.dumps(job.meta)
                pipe.hset(job.key, items=items)
            # The same list RQ's one RPUSH per job leaves, in one command per queue.
            ids: dict[str, list[str]] = {}
            for plan, job, *_ in self._entries:
                ids.setdefault(plan.queue.key, []).append(job.id)
            for key, queued in ids.items():
                pipe.rpush(key, *queued)
            pipe.execute()
        jobs = []
        for plan, job, *_ in self._entries:
            job.enqueued_at = enqueued_at
            job.redis_server_version = versions[id(plan.queue)]
            jobs.append(job)
        return jobs


__all__ = ["PER_JOB_FIELDS", "Batch", "Plan"]
