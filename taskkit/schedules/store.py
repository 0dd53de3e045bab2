"""Where schedules live in Redis: entry ids, keys, the entry's meta, and reading them back.

Storage has rq-scheduler's shape in a sorted set of taskkit's own: a template job hash
per schedule (``rq:job:<id>``, with the meta fields rq-scheduler writes) and its next run
time as the score in :data:`SCHEDULED_JOBS_KEY`. Not in rq-scheduler's own set: an
``rqscheduler`` process on the same database fires every due entry there itself (with a
JSON job class it enqueues the template once and drops it) or dies on the first one it
cannot unpickle (its default), and then the team's own rq-scheduler schedules stop too.
Kept apart, neither sees the other's entries (see :mod:`taskkit.schedules.foreign`).
Entries whose id starts with :data:`ID_PREFIX` are taskkit's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler as _RqScheduler

from taskkit.config import ScheduleConfig
from taskkit.errors import WorkflowError
from taskkit.registry import Registry
from taskkit.timing import assume_utc, at_time
from taskkit.workflows.runs import fetch as fetch_run

log = logging.getLogger("taskkit.scheduler")

SCHEDULED_JOBS_KEY = "taskkit:schedules:entries"
"""taskkit's sorted set: schedule entry id -> next run (Unix time)."""
RQ_SCHEDULER_JOBS_KEY: str = _RqScheduler.scheduled_jobs_key
"""rq-scheduler's sorted set, where taskkit 0.2 and older kept their entries too; a sync
moves any taskkit entry it finds there into :data:`SCHEDULED_JOBS_KEY`."""
ID_PREFIX = "taskkit-schedule-"
"""Entries whose id starts with this are taskkit's; every other entry is left alone."""
STATE_KEY = "taskkit:schedules:state"
"""Hash: schedule name -> JSON of its last tick (job id, nominal time, outcome)."""
SYNCED_KEY = "taskkit:schedules:synced"
"""The :func:`catalog_digest` of the jobs.yaml last synced; gone when Redis lost the store."""
SCHEDULER_KEY_PREFIX = "taskkit:scheduler:"
"""One key per running scheduler process, expiring unless refreshed (for ``status``)."""
DEFAULT_GRACE = 60
"""Seconds a tick may be late and still count as on time (misfire: skip)."""
META_SCHEDULE = "taskkit_schedule"
META_FINGERPRINT = "taskkit_fingerprint"
META_TIMING = "taskkit_timing"
META_TICK = "taskkit_tick"
BY_HAND = "run by hand"
"""The outcome recorded for a run started with ``taskkit schedules run``."""
HANDLED_BEFORE_LOSS = "handled before Redis lost its data"
"""The outcome recorded for a one-off that was due before Redis lost the store."""
_ACTIVE = {
    str(s.value)
    for s in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def schedule_id(name: str) -> str:
    """The deterministic rq-scheduler entry id of schedule ``name``."""
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{ID_PREFIX}{_UNSAFE.sub('_', name)}-{digest}"


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _timing_of(schedule: ScheduleConfig) -> str:
    return _digest([schedule.cron, schedule.every, schedule.at, schedule.timezone])


@dataclass(frozen=True)
class _Entry:
    entry_id: str
    name: str | None
    fingerprint: str | None
    timing: str | None
    in_rq_scheduler: float | None = None
    """The next run an older taskkit left in rq-scheduler's set (to be moved), if any."""


def catalog_digest(registry: Registry) -> str:
    """A digest of all the schedules of ``registry``'s file, as sync writes them."""
    return _digest(
        sorted((name, fingerprint(registry, name)) for name in registry.config.schedules)
    )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return assume_utc(now).astimezone(UTC)


def _existing(registry: Registry, *, legacy: bool = False) -> dict[str, _Entry]:
    """taskkit's entries; with ``legacy``, also those left in rq-scheduler's set."""
    conn = registry.connection
    ours = [_text(i) for i in conn.zrange(SCHEDULED_JOBS_KEY, 0, -1)]
    ours = [i for i in ours if i.startswith(ID_PREFIX)]
    left = _left_in_rq_scheduler(registry) if legacy else {}
    ids = ours + [i for i in left if i not in set(ours)]
    with conn.pipeline(transaction=False) as pipe:
        for entry_id in ids:
            pipe.hget(Job.key_for(entry_id), "meta")
        metas = pipe.execute()
    entries = {}
    for entry_id, raw in zip(ids, metas, strict=True):
        meta = _job_meta(registry, raw)
        entries[entry_id] = _Entry(
            entry_id,
            meta.get(META_SCHEDULE),
            meta.get(META_FINGERPRINT),
            meta.get(META_TIMING),
            left.get(entry_id),
        )
    return entries


def _left_in_rq_scheduler(registry: Registry) -> dict[str, float]:
    """taskkit entries in rq-scheduler's set (written there by taskkit 0.2 and older)."""
    found = registry.connection.zscan_iter(RQ_SCHEDULER_JOBS_KEY, match=f"{ID_PREFIX}*", count=1000)
    return {_text(entry_id): float(score) for entry_id, score in found}


def _active(pipe: redis.client.Pipeline, job_id: str) -> bool:
    status = pipe.hget(Job.key_for(job_id), "status")
    return status is not None and _text(status) in _ACTIVE


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job_meta(registry: Registry, raw: Any) -> dict[str, Any]:
    """A template's meta, which RQ stores with the job's serializer (JSON or pickle)."""
    if not raw:
        return {}
    try:
        meta = registry.serializer.loads(raw)
    except Exception:  # a foreign or damaged entry: treat as not ours to describe
        return {}
    return meta if isinstance(meta, dict) else {}


def _json_meta(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _fired_once(schedule: ScheduleConfig, last: dict[str, Any]) -> bool:
    """Whether ``schedule`` is an ``at`` whose one tick was handled (run or skipped)."""
    return schedule.at is not None and last.get("nominal") == at_time(schedule).timestamp()


def fingerprint(registry: Registry, name: str) -> str:
    """A digest of everything that makes up schedule ``name``'s runs."""
    schedule = registry.config.schedules[name]
    if schedule.workflow is not None:
        workflow = registry.config.workflows[schedule.workflow]
        jobs = sorted({step.job for step in workflow.steps.values()})
        parts = [workflow.model_dump(mode="json", by_alias=True)]
        parts += [registry.jobs[job].settings.model_dump(mode="json") for job in jobs]
        return _digest([schedule.model_dump(mode="json"), *parts])
    job = registry.jobs[str(schedule.job)].settings
    return _digest([schedule.model_dump(mode="json"), job.model_dump(mode="json")])


def last_started(schedule: ScheduleConfig, last: dict[str, Any]) -> str | None:
    """The id of the job, or workflow run, a schedule's latest run started."""
    value = last.get("run_id" if schedule.workflow is not None else "job_id")
    return str(value) if value else None


def still_running(
    registry: Registry, pipe: redis.client.Pipeline, schedule: ScheduleConfig, started: str
) -> bool:
    """Whether the job (queued or running) or workflow run ``started`` has not ended."""
    if schedule.workflow is None:
        return _active(pipe, started)
    try:
        return fetch_run(registry, started).status() == "running"
    except WorkflowError:  # expired with its ttl, or never written
        return False
