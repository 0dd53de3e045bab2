"""When a schedule fires: cron in its own timezone, fixed-rate ``every``, one-off ``at``.

Pure functions of a schedule and a point in time, so every rule (DST included) is
tested without a clock or a Redis.

Rules, which docs/schedules.md repeats:

- ``cron`` fields match the *wall clock* of the schedule's timezone.
  - Spring forward: a wall time that does not exist that day (02:30 in Europe/Berlin on
    the last Sunday of March) fires once, as many minutes after the gap as it was into
    it (03:30 local). A fire never happens twice at the same instant.
  - Fall back: a wall time that happens twice (02:30 on the last Sunday of October)
    fires once, at its first occurrence, unless the hour field is ``*``: then it fires
    in both passes, so an hourly job runs every real hour (as Vixie cron does).
- ``every`` ticks on a fixed grid anchored at the Unix epoch (UTC): ``every: 1m`` fires at
  each minute boundary, ``every: 1d`` at midnight UTC. The next tick is the previous
  nominal tick plus the period, never "now plus the period", so it cannot drift, and
  every scheduler process agrees on the grid.
- ``at`` fires once; a naive datetime is read in the schedule's timezone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from taskkit.config import ScheduleConfig

# Cron candidates are walked from this far before "after" in wall-clock time, so that a
# wall time in a repeated (fall-back) hour is not missed; anything not after is dropped.
_WALL_CLOCK_MARGIN = timedelta(hours=3)


def next_fire_times(schedule: ScheduleConfig, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` nominal fire times strictly after ``after``, as aware UTC datetimes.

    A one-off ``at`` schedule yields at most one time.
    """
    after = assume_utc(after).astimezone(UTC)
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
    every_hour = schedule.cron.split()[1] == "*"
    wall_start = (after.astimezone(tz) - _WALL_CLOCK_MARGIN).replace(tzinfo=None)
    candidates = croniter(schedule.cron, wall_start)
    found: set[datetime] = set()  # a set: a shifted gap time may equal a real one
    while True:
        try:
            wall: datetime = candidates.get_next(datetime)
        except ValueError:  # CroniterBadDateError: the expression never matches (Feb 30)
            break
        instants = _instants(wall, tz, every_hour)
        # A second pass through a repeated hour lands up to an offset change later than
        # the wall time suggests, so stop only once nothing earlier can still come.
        if len(found) >= count and instants[0] > sorted(found)[count - 1] + _WALL_CLOCK_MARGIN:
            break
        found.update(instant for instant in instants if instant > after)
    return sorted(found)[:count]


def _instants(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants a matching wall-clock time stands for.

    fold=0 is the first of two occurrences or, for a time skipped by a gap, the offset
    before the gap, which lands as far past the gap as the time was into it. The second
    occurrence of a repeated time fires too when the hour field is ``*``: an hourly job
    keeps running every real hour through the fall-back night, as in Vixie cron.
    """
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    instants = [first.astimezone(UTC)]
    if first.utcoffset() == second.utcoffset() or not every_hour:
        return instants
    skipped = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall
    if not skipped:
        instants.append(second.astimezone(UTC))
    return instants


def assume_utc(moment: datetime) -> datetime:
    """``moment``, read as UTC if it is naive (as ``enqueue_at`` and ``--at`` promise);
    ``astimezone()`` would read a naive one as the machine's local time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = ["assume_utc", "at_time", "next_fire_times"]
