"""Job progress: reported from inside a job, read from anywhere (a web view, the CLI).

``taskkit.progress(0.4, "exported 400 of 1000 rows")`` stores the fraction and message
in the running job's meta under :data:`PROGRESS_KEY`. The write merges into the meta
that Redis holds at that moment (WATCH/MULTI/EXEC), so keys someone else wrote there
meanwhile survive, and the running job's own copy of the meta is updated too, so RQ's
later writes of the meta (a retry) keep the progress. ``RQ``'s ``job.save_meta()`` writes
the process's copy whole and loses the other writers' keys (rq#480).

In eager mode the job lives in memory: progress goes to its meta, where the caller sees
it on the returned job, and :func:`rq.get_current_job` returns it while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job, _current_job

from taskkit.errors import TaskkitError

PROGRESS_KEY = "taskkit_progress"
"""The job meta field that holds ``{"fraction": ..., "message": ..., "at": ...}``."""

log = logging.getLogger("taskkit.worker")


@dataclass(frozen=True)
class Progress:
    """How far a job got: a fraction from 0 to 1, a message, and when it said so."""

    fraction: float
    message: str | None
    at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {
            "fraction": self.fraction,
            "message": self.message,
            "at": self.at.isoformat() if self.at else None,
        }

    def __str__(self) -> str:
        text = f"{self.fraction:.0%}"
        return f"{text} {self.message}" if self.message else text


def progress(fraction: float, message: str | None = None) -> None:
    """Record how far the running job is: ``fraction`` from 0.0 to 1.0, and a message.

    Call it from inside a job (in a worker or in eager mode). Each call costs the worker
    three Redis round trips; report every few percent, not every row. Raises
    :class:`TaskkitError` outside a job and ``ValueError`` for a fraction outside 0-1.
    """
    job = get_current_job()
    if job is None:
        raise TaskkitError(
            "taskkit.progress() was called outside a job; call it from a job's function "
            "while a worker (or eager mode) runs it"
        )
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise ValueError(f"progress fraction must be a number from 0 to 1, not {fraction!r}")
    value = {
        "fraction": float(fraction),
        "message": None if message is None else str(message),
        "at": datetime.now(UTC).isoformat(),
    }
    if _in_memory(job):
        job.meta[PROGRESS_KEY] = value
        return
    _merge(job, value)


def progress_of(job: Job) -> Progress | None:
    """The progress ``job`` last reported (as read when the job was fetched), or None."""
    meta = job.meta if isinstance(job.meta, dict) else {}
    value = meta.get(PROGRESS_KEY)
    if not isinstance(value, dict):
        return None
    fraction = value.get("fraction")
    if not isinstance(fraction, int | float) or not math.isfinite(fraction):
        return None
    message = value.get("message")
    return Progress(
        min(1.0, max(0.0, float(fraction))),
        message if isinstance(message, str) else None,
        _moment(value.get("at")),
    )


@contextlib.contextmanager
def current_job(job: Job) -> Iterator[None]:
    """Make ``job`` what :func:`rq.get_current_job` returns, as RQ's ``Job.perform`` does."""
    token = _current_job.set(job)
    try:
        yield
    finally:
        _current_job.reset(token)


def _in_memory(job: Job) -> bool:
    from taskkit.eager import EagerJob

    return isinstance(job, EagerJob)


def _merge(job: Job, value: dict[str, Any]) -> None:
    """Write ``value`` into the meta Redis holds, keeping the keys others wrote there."""
    with job.connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(job.key)  # type: ignore[no-untyped-call]
                stored = _stored_meta(job, pipe.hget(job.key, "meta"))
                if stored is None:
                    pipe.unwatch()
                    log.warning("job %s: its meta cannot be read; progress not stored", job.id)
                    return
                stored[PROGRESS_KEY] = value
                pipe.multi()
                pipe.hset(job.key, "meta", job.serializer.dumps(stored))
                pipe.execute()
                break
            except redis.WatchError:
                continue  # the job's hash changed meanwhile (a heartbeat, a meta write)
    job.meta = stored


def _stored_meta(job: Job, raw: Any) -> dict[str, Any] | None:
    if not raw:
        return dict(job.meta)
    try:
        stored = job.serializer.loads(raw)
    except Exception:  # a meta another producer wrote in a format we cannot read
        return None
    return stored if isinstance(stored, dict) else None


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


__all__ = ["PROGRESS_KEY", "Progress", "current_job", "progress", "progress_of"]
