"""What people read about schedules: next runs, last run, and each one's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskkit import connection
from taskkit.config import ScheduleConfig
from taskkit.registry import Registry
from taskkit.schedules.store import (
    BY_HAND,
    SCHEDULED_JOBS_KEY,
    STATE_KEY,
    _Entry,
    _existing,
    _fired_once,
    _json_meta,
    _now,
    fingerprint,
    schedule_id,
)
from taskkit.timing import next_fire_times


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as ``taskkit schedules list`` shows it."""

    name: str
    schedule: ScheduleConfig
    stored_next: datetime | None
    upcoming: list[datetime]
    last: dict[str, Any]
    state: str

    @property
    def last_run(self) -> datetime | None:
        """When the latest run was due (a tick), or enqueued (a run by hand)."""
        key = "at" if self.last.get("outcome") == BY_HAND else "nominal"
        moment = self.last.get(key)
        return None if moment is None else datetime.fromtimestamp(moment, UTC)


def describe(registry: Registry, now: datetime | None = None, count: int = 3) -> list[ScheduleView]:
    """Each schedule with its stored next run, the next ``count`` times, its last tick."""
    moment = _now(now)
    names = list(registry.config.schedules)

    def read() -> tuple[list[Any], list[Any], dict[str, _Entry]]:
        with registry.connection.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zscore(SCHEDULED_JOBS_KEY, schedule_id(name))
            scores = pipe.execute()
        states = registry.connection.hmget(STATE_KEY, names) if names else []
        return scores, states, _existing(registry)

    scores, states, existing = connection.call(registry.redis_url, "read schedules", read)
    views = []
    for name, score, raw in zip(names, scores, states, strict=True):
        schedule = registry.config.schedules[name]
        stored = datetime.fromtimestamp(score, UTC) if score is not None else None
        entry = existing.get(schedule_id(name))
        last = _json_meta(raw)
        views.append(
            ScheduleView(
                name,
                schedule,
                stored,
                next_fire_times(schedule, moment, count) if schedule.enabled else [],
                last,
                _state(registry, name, entry, stored, last),
            )
        )
    return views


def _state(
    registry: Registry,
    name: str,
    entry: _Entry | None,
    stored: datetime | None,
    last: dict[str, Any],
) -> str:
    schedule = registry.config.schedules[name]
    if not schedule.enabled:
        return "disabled"
    if entry is None or stored is None:
        return "done" if _fired_once(schedule, last) else "not synced"
    if entry.fingerprint != fingerprint(registry, name):
        return "changed (run sync)"
    return "active"
