"""Syncing jobs.yaml's schedules into Redis: plan the changes, then apply them in one go.

Each schedule has a deterministic entry id (:func:`~taskkit.schedules.store.schedule_id`);
changed schedules are updated in place, removed ones deleted, foreign entries left
alone, and syncing twice changes nothing. Entries an older taskkit kept in rq-scheduler's
own set are moved into taskkit's (keeping their next run), out of ``rqscheduler``'s
reach. A sync also publishes the digest of the file's schedules
(:data:`~taskkit.schedules.store.SYNCED_KEY`), which running schedulers follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from rq.job import Job, JobStatus

from taskkit import connection
from taskkit.config import ScheduleConfig
from taskkit.registry import META_KEY, Registry
from taskkit.schedules.store import (
    HANDLED_BEFORE_LOSS,
    META_FINGERPRINT,
    META_SCHEDULE,
    META_TIMING,
    RQ_SCHEDULER_JOBS_KEY,
    SCHEDULED_JOBS_KEY,
    STATE_KEY,
    SYNCED_KEY,
    _Entry,
    _existing,
    _fired_once,
    _json_meta,
    _now,
    _text,
    _timing_of,
    catalog_digest,
    fingerprint,
    schedule_id,
)
from taskkit.timing import at_time, next_fire_times

Action = Literal["create", "update", "remove", "unchanged", "move"]
"""``move``: an entry found in rq-scheduler's set goes to taskkit's, keeping its next run."""


@dataclass(frozen=True)
class Change:
    """One step of a sync plan."""

    action: Action
    name: str
    entry_id: str
    next_run: datetime | None = None

    def __str__(self) -> str:
        when = f" next {self.next_run.isoformat()}" if self.next_run else ""
        return f"{self.action:<9} {self.name}{when}"


def plan(registry: Registry, now: datetime | None = None) -> list[Change]:
    """What :func:`sync` would change, without changing anything."""
    return _plan(registry, _existing(registry, legacy=True), _now(now))


def sync(registry: Registry, now: datetime | None = None, *, dry_run: bool = False) -> list[Change]:
    """Make rq-scheduler's store match jobs.yaml; return the plan it carried out.

    Creates missing entries, updates changed ones in place (keeping their next run when
    only arguments or job settings changed), removes taskkit entries no longer in the
    file (or disabled), and leaves every entry taskkit did not create alone. Running it
    twice changes nothing the second time. It also publishes the file's
    :func:`catalog_digest`, which tells running schedulers to pick the changes up.
    """
    moment = _now(now)
    return connection.call(
        registry.redis_url, "sync schedules", lambda: _sync(registry, moment, dry_run=dry_run)
    )


def _sync(
    registry: Registry,
    now: datetime,
    *,
    dry_run: bool = False,
    handled_until: datetime | None = None,
) -> list[Change]:
    """:func:`sync`, with redis-py's errors as they are.

    ``handled_until`` is for a scheduler that syncs a Redis which lost the store: every
    tick up to then was handled, so entries are recreated at their first tick after it
    (the ticks since then come due late, for the misfire policy to decide), and a one-off
    due by then is recorded as handled instead of being created to fire a second time.
    """
    handled = _handled_one_offs(registry, handled_until)
    changes = _plan(registry, _existing(registry, legacy=True), now, handled, handled_until)
    if not dry_run:
        _apply(registry, changes)
        _forget_removed(registry)
        _record_handled(registry, handled, now)
    return changes


def _plan(
    registry: Registry,
    existing: dict[str, _Entry],
    now: datetime,
    handled: set[str] | None = None,
    handled_until: datetime | None = None,
) -> list[Change]:
    changes = [_move(entry) for entry in existing.values() if entry.in_rq_scheduler is not None]
    wanted: set[str] = set()
    finished = _finished_one_offs(registry) | (handled or set())
    for name, schedule in registry.config.schedules.items():
        entry_id = schedule_id(name)
        if not schedule.enabled or name in finished:
            continue
        wanted.add(entry_id)
        entry = existing.get(entry_id)
        if entry is None:
            first = _first_run(schedule, now, handled_until)
            changes.append(Change("create", name, entry_id, first))
        elif entry.fingerprint != fingerprint(registry, name):
            keeps_time = entry.timing == _timing_of(schedule)
            first = None if keeps_time else _first_run(schedule, now)
            changes.append(Change("update", name, entry_id, first))
        else:
            changes.append(Change("unchanged", name, entry_id))
    for entry_id, entry in existing.items():
        if entry_id not in wanted:
            changes.append(Change("remove", entry.name or entry_id, entry_id))
    return changes


def _move(entry: _Entry) -> Change:
    score = entry.in_rq_scheduler
    when = None if score is None else datetime.fromtimestamp(score, UTC)
    return Change("move", entry.name or entry.entry_id, entry.entry_id, when)


def _finished_one_offs(registry: Registry) -> set[str]:
    """``at`` schedules whose one tick has already been handled."""
    names = [n for n, s in registry.config.schedules.items() if s.at is not None]
    if not names:
        return set()
    states = registry.connection.hmget(STATE_KEY, names)
    return {
        name
        for name, raw in zip(names, states, strict=True)
        if _fired_once(registry.config.schedules[name], _json_meta(raw))
    }


def _first_run(
    schedule: ScheduleConfig, now: datetime, handled_until: datetime | None = None
) -> datetime | None:
    if schedule.at is not None:
        return at_time(schedule)  # even if past: the misfire policy decides at fire time
    since = now if handled_until is None else min(now, handled_until)
    upcoming = next_fire_times(schedule, since, 1)
    return upcoming[0] if upcoming else None


def _handled_one_offs(registry: Registry, handled_until: datetime | None) -> set[str]:
    """``at`` schedules due at or before ``handled_until``: a scheduler handled them."""
    if handled_until is None:
        return set()
    return {
        name
        for name, schedule in registry.config.schedules.items()
        if schedule.at is not None and at_time(schedule) <= handled_until
    }


def _record_handled(registry: Registry, names: set[str], now: datetime) -> None:
    """Give one-offs handled before Redis lost their records a record again (never
    replacing a real one), so that no later sync creates them to fire a second time."""
    for name in sorted(names):
        record = {
            "nominal": at_time(registry.config.schedules[name]).timestamp(),
            "outcome": HANDLED_BEFORE_LOSS,
            "at": now.timestamp(),
            "one_off": True,
        }
        registry.connection.hsetnx(STATE_KEY, name, json.dumps(record))


def _apply(registry: Registry, changes: list[Change]) -> None:
    with registry.connection.pipeline() as pipe:
        for change in changes:
            if change.action in ("create", "update"):
                _write_template(registry, change, pipe)
            elif change.action == "move" and change.next_run is not None:
                # nx: an entry in both sets keeps taskkit's time, the one its schedulers use.
                pipe.zadd(
                    SCHEDULED_JOBS_KEY, {change.entry_id: change.next_run.timestamp()}, nx=True
                )
                pipe.zrem(RQ_SCHEDULER_JOBS_KEY, change.entry_id)
            elif change.action == "remove":
                pipe.zrem(SCHEDULED_JOBS_KEY, change.entry_id)
                pipe.zrem(RQ_SCHEDULER_JOBS_KEY, change.entry_id)
                pipe.delete(Job.key_for(change.entry_id))
        pipe.set(SYNCED_KEY, catalog_digest(registry))
        pipe.execute()


def _forget_removed(registry: Registry) -> None:
    """Drop the last-run records of schedules no longer in the file.

    Disabled schedules keep theirs, and so does every ``at`` one-off that fired, in the
    file or not: its record is what stops it from firing again if it comes back.
    """
    declared = set(registry.config.schedules)
    records = registry.connection.hgetall(STATE_KEY)
    gone = [
        name
        for name, raw in ((_text(k), v) for k, v in records.items())
        if name not in declared and not _json_meta(raw).get("one_off")
    ]
    if gone:
        registry.connection.hdel(STATE_KEY, *gone)


def _write_template(registry: Registry, change: Change, pipe: redis.client.Pipeline) -> None:
    schedule = registry.config.schedules[change.name]
    if schedule.workflow is not None:
        _write_workflow_template(registry, change, pipe)
        return
    declared = registry.jobs[str(schedule.job)]
    meta: dict[str, Any] = {
        META_KEY: declared.name,
        META_SCHEDULE: change.name,
        META_FINGERPRINT: fingerprint(registry, change.name),
        META_TIMING: _timing_of(schedule),
        "timezone": schedule.timezone,
    }
    # The fields rq-scheduler itself writes, so its tools describe the entry correctly.
    if schedule.cron is not None:
        meta.update(cron_string=schedule.cron, use_local_timezone=False)
    elif schedule.every is not None:
        meta["interval"] = schedule.every
    settings = declared.settings
    template = Job.create(
        settings.rq_func_name,
        args=schedule.args,
        kwargs=schedule.kwargs,
        connection=registry.connection,
        id=change.entry_id,
        serializer=registry.serializer,
        status=JobStatus.SCHEDULED,
        timeout=settings.timeout,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl,
        description=schedule.description or f"schedule {change.name}: {settings.name}",
        meta=meta,
    )
    template.origin = settings.queue
    _save_template(template, change, pipe)


def _write_workflow_template(
    registry: Registry, change: Change, pipe: redis.client.Pipeline
) -> None:
    """A schedule of a workflow: an entry rq-scheduler's tools can read, naming no job.

    taskkit's schedulers start the run (firing.py); an entry some other scheduler enqueued
    would name a function no jobs.yaml declares, which taskkit's workers refuse.
    """
    schedule = registry.config.schedules[change.name]
    meta: dict[str, Any] = {
        META_SCHEDULE: change.name,
        META_FINGERPRINT: fingerprint(registry, change.name),
        META_TIMING: _timing_of(schedule),
        "timezone": schedule.timezone,
        "taskkit_workflow": schedule.workflow,
    }
    if schedule.cron is not None:
        meta.update(cron_string=schedule.cron, use_local_timezone=False)
    elif schedule.every is not None:
        meta["interval"] = schedule.every
    template = Job.create(
        f"taskkit.workflow.{schedule.workflow}",
        kwargs=schedule.kwargs,
        connection=registry.connection,
        id=change.entry_id,
        serializer=registry.serializer,
        status=JobStatus.SCHEDULED,
        description=schedule.description or f"schedule {change.name}: {schedule.target}",
        meta=meta,
    )
    template.origin = registry.config.defaults.queue
    _save_template(template, change, pipe)


def _save_template(template: Job, change: Change, pipe: redis.client.Pipeline) -> None:
    """Write an entry's template and its next run."""
    if change.action == "update":
        pipe.delete(template.key)  # RQ's save is an HSET: fields it no longer writes would stay
    template.save(pipeline=pipe)
    if change.next_run is not None:
        # nx for creates: a concurrent sync that got there first keeps its (equal) time.
        pipe.zadd(
            SCHEDULED_JOBS_KEY,
            {change.entry_id: change.next_run.timestamp()},
            nx=change.action == "create",
        )
