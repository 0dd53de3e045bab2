"""Running a schedule by hand (``taskkit schedules run NAME``): now, as its latest run."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import redis

from taskkit import connection
from taskkit.errors import ScheduleError
from taskkit.registry import Registry
from taskkit.schedules.starting import start_run, started_field
from taskkit.schedules.store import (
    BY_HAND,
    STATE_KEY,
    _json_meta,
    _now,
    last_started,
    still_running,
)

log = logging.getLogger("taskkit.scheduler")


def run_now(
    registry: Registry, name: str, *, force: bool = False, now: datetime | None = None
) -> str:
    """Enqueue schedule ``name``'s job now, with its arguments (or start a run of its
    workflow); the job's (or run's) id.

    A run by hand counts as the schedule's latest run, so ``overlap: skip`` keeps the
    next tick from starting beside it; it does not move the schedule's next tick. While
    the previous run is queued or running, a schedule with ``overlap: skip`` refuses
    unless ``force``.
    """
    schedule = registry.config.schedules.get(name)
    if schedule is None:
        known = ", ".join(registry.config.schedules) or "none"
        raise ScheduleError(f"no schedule {name!r} in {registry.path} (schedules: {known})")
    moment = _now(now)

    def run() -> str:
        with registry.connection.pipeline() as pipe:
            while True:
                try:
                    return _enqueue_by_hand(registry, pipe, name, force=force, now=moment)
                except redis.WatchError:
                    continue  # a tick or another run-by-hand changed the record: look again

    return connection.call(registry.redis_url, f"run schedule {name}", run)


def _enqueue_by_hand(
    registry: Registry, pipe: redis.client.Pipeline, name: str, *, force: bool, now: datetime
) -> str:
    schedule = registry.config.schedules[name]
    pipe.watch(STATE_KEY)  # type: ignore[no-untyped-call]
    last = _json_meta(pipe.hget(STATE_KEY, name))
    previous = last_started(schedule, last)
    field = started_field(schedule)
    if (
        schedule.overlap == "skip"
        and not force
        and previous
        and still_running(registry, pipe, schedule, previous)
    ):
        pipe.unwatch()
        raise ScheduleError(
            f"schedule {name!r}: its last run ({field[:-3]} {previous}) is still queued or "
            "running and the schedule has overlap: skip; wait for it, or pass --force"
        )
    pipe.multi()
    started = start_run(registry, pipe, name, schedule, BY_HAND)
    # The tick record ("nominal") stays: it is what keeps a done one-off from firing again.
    state = {**last, "outcome": BY_HAND, "at": now.timestamp(), field: started}
    pipe.hset(STATE_KEY, name, json.dumps(state))
    pipe.execute()
    log.info(
        "%s: run by hand, %s=%s",
        name,
        field[:-3],
        started,
        extra={"schedule": name, "job_id": started},
    )
    return started
