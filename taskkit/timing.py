"""When a schedule fires: cron in its own timezone, fixed-rate ``every``, one-off ``at``.

Pure functions of a schedule and a point in time, so every rule (DST included) is
tested without a clock or a Redis.

Rules, which the README repeats:

- ``cron`` fields match the *wall clock* of the schedule's timezone.
  - Spring forward: a wall time that does not exist that day (02:30 in Europe/Berlin on
    the last Sunday of March) fires once, as many minutes after the gap as it was into
    it (03:30 local). A fire never happens twice at the same instant.
  - Fall back: a wall time that happens twice (02:30 on the last Sunday of October)
    fires once, at its first occurrence.
- ``every`` ticks on a fixed grid anchored at the Unix epoch (UTC): ``every: 1m`` fires at
  each minute boundary, ``every: 1d`` at midnight UTC. The next tick is the previous
  nominal tick plus the period, never "now plus the period", so it cannot drift, and
  every scheduler process agrees on the grid.
- ``at`` fires once; a naive datetime is read in the schedule's timezone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter

from taskkit.config import ScheduleConfig

# Cron candidates are walked from this far before "after" in wall-clock time, so that a
# wall time in a repeated (fall-back) hour is not missed; anything not after is dropped.
_WALL_CLOCK_MARGIN = timedelta(hours=3)


def next_fire_times(schedule: ScheduleConfig, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` nominal fire times strictly after ``after``, as aware UTC datetimes.

    A one-off ``at`` schedule yields at most one time.
    """
    after = _aware(after).astimezone(UTC)
    if schedule.at is not None:
        at = at_time(schedule)
        return [at] if at > after else []
    if schedule.every is not None:
        return _every(schedule.every, after, count)
    assert schedule.cron is not None
    return _cron(schedule, after, count)


def at_time(schedule: ScheduleConfig) -> datetime:
    """The UTC instant of an ``at`` schedule."""
    assert schedule.at is not None
    at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=schedule.tz)
    return at.astimezone(UTC)


def _every(period: int, after: datetime, count: int) -> list[datetime]:
    first = (int(after.timestamp()) // period + 1) * period
    return [datetime.fromtimestamp(first + i * period, UTC) for i in range(count)]


def _cron(schedule: ScheduleConfig, after: datetime, count: int) -> list[datetime]:
    assert schedule.cron is not None
    tz = schedule.tz
    wall_start = (after.astimezone(tz) - _WALL_CLOCK_MARGIN).replace(tzinfo=None)
    candidates = croniter(schedule.cron, wall_start)
    found: list[datetime] = []
    while len(found) < count:
        try:
            wall: datetime = candidates.get_next(datetime)
        except ValueError:  # CroniterBadDateError: the expression never matches (Feb 30)
            break
        # fold=0: the first of two occurrences, or for a skipped time, the offset before
        # the gap, which lands as far past the gap as the time was into it.
        instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if instant > after and (not found or instant > found[-1]):
            found.append(instant)
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["at_time", "next_fire_times"]
