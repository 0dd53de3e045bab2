"""What a run's jobs left in Redis, read in one round trip: their states and results.

A step's jobs are plain RQ jobs: their status, timings and results are RQ's own. The only
thing taskkit adds is the mark of a skipped step, in the job's meta (a skipped job ends
"finished" in RQ's terms, without calling its function).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.client import Pipeline
from rq.job import Job
from rq.results import Result
from rq.utils import str_to_date

from taskkit.workflows.plan import STEP_META, Outcome

_FIELDS = ("status", "meta", "enqueued_at", "started_at", "ended_at")
_FAILED = {"failed", "stopped", "canceled", "lost"}
_ENDED = _FAILED | {"finished", "skipped"}


@dataclass(frozen=True)
class JobState:
    """One job of a run: RQ's status (or ``skipped``, or ``lost`` for a job that is gone
    from Redis), why it was skipped, and when it was enqueued, started and ended."""

    id: str
    status: str
    note: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def ended(self) -> bool:
        """Whether the job will not change any more."""
        return self.status in _ENDED

    @property
    def outcome(self) -> Outcome | None:
        """``ok``, ``failed`` or ``skipped`` once the job ended; None before."""
        if self.status == "finished":
            return "ok"
        if self.status == "skipped":
            return "skipped"
        return "failed" if self.status in _FAILED else None


def ask_states(pipe: Pipeline, ids: Sequence[str]) -> None:
    """Queue the reads of ``ids``' states on ``pipe`` (see :func:`states`)."""
    for job_id in ids:
        pipe.hmget(Job.key_for(job_id), _FIELDS)


def states(ids: Sequence[str], replies: Sequence[Any], serializer: Any) -> list[JobState]:
    """The states of ``ids`` from the replies of :func:`ask_states`."""
    return [_state(job_id, reply, serializer) for job_id, reply in zip(ids, replies, strict=True)]


def _state(job_id: str, reply: Sequence[Any], serializer: Any) -> JobState:
    status, raw_meta, enqueued, started, ended = reply
    if status is None:
        return JobState(job_id, "lost")
    text = status.decode() if isinstance(status, bytes) else str(status)
    note = _skipped(raw_meta, serializer) if text == "finished" else None
    return JobState(
        job_id,
        "skipped" if note is not None else text,
        note,
        _date(enqueued),
        _date(started),
        _date(ended),
    )


def _skipped(raw_meta: Any, serializer: Any) -> str | None:
    if not raw_meta:
        return None
    try:
        meta = serializer.loads(raw_meta)
        note = meta[STEP_META].get("skipped")
    except Exception:  # a meta this process cannot read marks nothing
        return None
    return str(note) if note else None


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return str_to_date(value)
    except ValueError:
        return None


def ask_results(pipe: Pipeline, ids: Sequence[str]) -> None:
    """Queue the reads of ``ids``' latest results on ``pipe`` (see :func:`results`)."""
    for job_id in ids:
        pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)  # type: ignore[no-untyped-call]


def results(
    ids: Sequence[str], replies: Sequence[Any], connection: Any, serializer: Any
) -> list[Any]:
    """What each of ``ids`` returned (None for a job that failed, was skipped or is gone)."""
    values = []
    for job_id, reply in zip(ids, replies, strict=True):
        value = None
        if reply:
            result_id, payload = reply[0]
            rid = result_id.decode() if isinstance(result_id, bytes) else str(result_id)
            result = Result.restore(job_id, rid, payload, connection, serializer)
            if result.type == Result.Type.SUCCESSFUL:
                value = result.return_value
        values.append(value)
    return values


__all__ = ["JobState", "ask_results", "ask_states", "results", "states"]
