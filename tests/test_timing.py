"""Next fire times (taskkit/timing.py): pure, no clock and no Redis.

The DST cases assert exact UTC instants for the rules the module docstring states:
a wall time that does not exist fires once, as far past the gap as it was into it; a
wall time that happens twice fires once, at its first occurrence, unless the hour field
is * (then both passes fire, so hourly jobs run every real hour); no instant twice.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskkit.config import ScheduleConfig
from taskkit.timing import at_time, next_fire_times


def utc(text: str) -> datetime:
    """``"2025-03-30 01:30"`` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(expression: str, timezone: str = "UTC") -> ScheduleConfig:
    return ScheduleConfig(job="j", cron=expression, timezone=timezone)


def fires(schedule: ScheduleConfig, after: str, count: int) -> list[str]:
    found = next_fire_times(schedule, utc(after), count)
    return [moment.strftime("%m-%d %H:%M") for moment in found]


BER, NYC = "Europe/Berlin", "America/New_York"
# Europe/Berlin: 2025-03-30 01:00Z clocks jump 02:00 CET -> 03:00 CEST;
#                2025-10-26 01:00Z clocks fall 03:00 CEST -> 02:00 CET (02:xx twice).
# America/New_York: 2025-03-09 07:00Z clocks jump 02:00 EST -> 03:00 EDT;
#                   2025-11-02 06:00Z clocks fall 02:00 EDT -> 01:00 EST (01:xx twice).
DST_CASES = [  # (zone, cron, after (2025, UTC), next fires (UTC))
    # spring forward, a daily time inside the gap: once, an hour later in wall time
    (BER, "30 2 * * *", "03-28 12:00", "03-29 01:30 | 03-30 01:30 | 03-31 00:30"),
    (NYC, "30 2 * * *", "03-07 12:00", "03-08 07:30 | 03-09 07:30 | 03-10 06:30"),
    # spring forward, hourly: the shifted 02:30 and the real 03:30 are one instant, fired once
    (BER, "30 * * * *", "03-29 23:00", "03-29 23:30 | 03-30 00:30 | 03-30 01:30 | 03-30 02:30"),
    (NYC, "30 * * * *", "03-09 05:00", "03-09 05:30 | 03-09 06:30 | 03-09 07:30 | 03-09 08:30"),
    (BER, "0 * * * *", "03-29 22:30", "03-29 23:00 | 03-30 00:00 | 03-30 01:00 | 03-30 02:00"),
    (NYC, "0 * * * *", "03-09 05:30", "03-09 06:00 | 03-09 07:00 | 03-09 08:00"),
    # fall back, a daily time in the repeated hour: once, at its first occurrence
    (BER, "30 2 * * *", "10-24 12:00", "10-25 00:30 | 10-26 00:30 | 10-27 01:30"),
    (NYC, "30 1 * * *", "10-31 12:00", "11-01 05:30 | 11-02 05:30 | 11-03 06:30"),
    # a daily time outside the repeated hour just moves with the offset
    (NYC, "30 2 * * *", "10-31 12:00", "11-01 06:30 | 11-02 07:30 | 11-03 07:30"),
    # fall back, hourly (hour field *): both passes through the repeated hour fire, so the
    # job keeps running every real hour
    (
        BER,
        "30 * * * *",
        "10-25 22:00",
        "10-25 22:30 | 10-25 23:30 | 10-26 00:30 | 10-26 01:30 | 10-26 02:30",
    ),
    (NYC, "30 * * * *", "11-02 04:00", "11-02 04:30 | 11-02 05:30 | 11-02 06:30 | 11-02 07:30"),
    (BER, "0 * * * *", "10-25 22:30", "10-25 23:00 | 10-26 00:00 | 10-26 01:00 | 10-26 02:00"),
    (NYC, "0 * * * *", "11-02 03:30", "11-02 04:00 | 11-02 05:00 | 11-02 06:00 | 11-02 07:00"),
    # fall back, a fixed list of hours: the repeated hour fires once
    (BER, "30 1,2,3 * * *", "10-25 22:00", "10-25 23:30 | 10-26 00:30 | 10-26 02:30"),
]


@pytest.mark.parametrize(("timezone", "expression", "after", "expected"), DST_CASES)
def test_dst_transitions_fire_once_at_the_documented_instants(
    timezone: str, expression: str, after: str, expected: str
) -> None:
    schedule = cron(expression, timezone)
    wanted = expected.split(" | ")
    assert fires(schedule, f"2025-{after}", len(wanted)) == wanted
    # One call at a time, as the scheduler asks after each tick, gives the same instants.
    moment, chained = utc(f"2025-{after}"), []
    for _ in wanted:
        [moment] = next_fire_times(schedule, moment, 1)
        chained.append(moment.strftime("%m-%d %H:%M"))
    assert chained == wanted


def test_nonexistent_wall_time_lands_as_far_past_the_gap_as_it_was_into_it() -> None:
    [moment] = next_fire_times(cron("45 2 * * *", "Europe/Berlin"), utc("2025-03-29 12:00"))
    local = moment.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.utcoffset()) == (3, 45, timedelta(hours=2))


def test_asking_from_inside_the_repeated_hour_does_not_fire_it_again() -> None:
    berlin = cron("30 2 * * *", "Europe/Berlin")
    # 01:10Z is 02:10 CET, the second 02:10 of the night; 02:30 already fired at 00:30Z.
    assert fires(berlin, "2025-10-26 01:10", 1) == ["10-27 01:30"]
    assert fires(berlin, "2025-10-26 00:29", 1) == ["10-26 00:30"]


def test_cron_is_read_in_the_schedules_timezone_not_utc() -> None:
    assert fires(cron("0 3 * * *", "Europe/Berlin"), "2025-01-10 00:00", 2) == [
        "01-10 02:00",
        "01-11 02:00",
    ]
    assert fires(cron("0 3 * * *", "Asia/Kolkata"), "2025-01-10 00:00", 1) == ["01-10 21:30"]
    assert fires(cron("0 3 * * *"), "2025-01-10 00:00", 1) == ["01-10 03:00"]


def test_result_is_strictly_after_and_naive_input_counts_as_utc() -> None:
    schedule = cron("*/15 * * * *")
    assert fires(schedule, "2025-01-01 10:15", 2) == ["01-01 10:30", "01-01 10:45"]
    naive = next_fire_times(schedule, datetime(2025, 1, 1, 10, 15), 1)
    assert naive == [utc("2025-01-01 10:30")]
    assert naive[0].tzinfo is UTC


def test_a_cron_that_never_matches_yields_nothing() -> None:
    assert next_fire_times(cron("0 0 30 2 *"), utc("2025-01-01 00:00"), 3) == []


# -- every ---------------------------------------------------------------------------------


def test_every_ticks_on_a_grid_anchored_at_the_epoch() -> None:
    minute = ScheduleConfig(job="j", every=60)
    assert next_fire_times(minute, utc("2025-01-01 10:00:59.999"), 2) == [
        utc("2025-01-01 10:01"),
        utc("2025-01-01 10:02"),
    ]
    assert next_fire_times(minute, utc("2025-01-01 10:01"), 1) == [utc("2025-01-01 10:02")]
    daily = ScheduleConfig(job="j", every="1d", timezone="Europe/Berlin")
    assert next_fire_times(daily, utc("2025-03-30 12:00"), 1) == [utc("2025-03-31 00:00")]
    odd = ScheduleConfig(job="j", every=7)
    [moment] = next_fire_times(odd, utc("2025-01-01 00:00"), 1)
    assert moment.timestamp() % 7 == 0


def test_every_grid_does_not_depend_on_when_it_is_asked() -> None:
    schedule = ScheduleConfig(job="j", every=90)
    start = utc("2025-06-01 00:00")
    grid = next_fire_times(schedule, start, 50)
    for late in (0.0, 0.4, 89.9):
        # Asking again after each tick, however late, stays on the same grid.
        moment, chained = start, []
        for _ in range(50):
            [nominal] = next_fire_times(schedule, moment, 1)
            chained.append(nominal)
            moment = nominal + timedelta(seconds=late)
        assert chained == grid
    assert {b - a for a, b in itertools.pairwise(grid)} == {timedelta(seconds=90)}


# -- at ------------------------------------------------------------------------------------


def test_at_fires_once_and_a_naive_time_is_read_in_the_timezone() -> None:
    schedule = ScheduleConfig(job="j", at=datetime(2025, 7, 1, 9, 0), timezone="Europe/Berlin")
    assert at_time(schedule) == utc("2025-07-01 07:00")
    assert next_fire_times(schedule, utc("2025-07-01 06:00"), 5) == [utc("2025-07-01 07:00")]
    assert next_fire_times(schedule, utc("2025-07-01 07:00"), 5) == []
    aware = ScheduleConfig(
        job="j", at=datetime(2025, 7, 1, 9, 0, tzinfo=UTC), timezone="Asia/Tokyo"
    )
    assert at_time(aware) == utc("2025-07-01 09:00")


# -- properties ----------------------------------------------------------------------------

_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
_CRONS = st.tuples(
    st.sampled_from(["0", "30", "*/15", "59", "0,30", "*"]),
    st.sampled_from(["*", "2", "1,2,3", "*/3", "0-4"]),
    st.sampled_from(["*", "1", "L", "*/2"]),
    st.sampled_from(["*", "3", "10,11"]),
    st.sampled_from(["*", "0", "1-5"]),
).map(" ".join)


# Nights when clocks change in one of the zones above, so that examples land near them.
_DST_NIGHTS = [
    datetime(2025, 3, 30),
    datetime(2025, 10, 26),
    datetime(2025, 3, 9),
    datetime(2025, 11, 2),
    datetime(2025, 4, 6),
    datetime(2025, 10, 5),
]
_NEAR_DST = st.builds(
    lambda night, minutes: night + timedelta(minutes=minutes),
    st.sampled_from(_DST_NIGHTS),
    st.integers(min_value=-36 * 60, max_value=24 * 60),
)
_ANY_TIME = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 1, 1))


@settings(max_examples=120, deadline=None)
@given(
    expression=_CRONS,
    timezone=st.sampled_from(_ZONES),
    after=st.one_of(_NEAR_DST, _ANY_TIME),
)
def test_cron_times_increase_strictly_and_chained_calls_agree(
    expression: str, timezone: str, after: datetime
) -> None:
    schedule = cron(expression, timezone)
    start = after.replace(tzinfo=UTC)
    found = next_fire_times(schedule, start, 6)
    assert all(moment > start for moment in found)
    assert all(a < b for a, b in itertools.pairwise(found))
    moment, chained = start, []
    for _ in found:
        [moment] = next_fire_times(schedule, moment, 1)
        chained.append(moment)
    assert chained == found
    zone = ZoneInfo(timezone)
    for moment in found:
        # Every fire is at a wall time the expression names, or just past a DST gap.
        named = moment.astimezone(zone).replace(tzinfo=None)
        # A time in a gap fires at its wall time read with the offset from before the gap.
        offset_before = (moment - timedelta(hours=3)).astimezone(zone).utcoffset()
        assert offset_before is not None
        in_gap = (moment + offset_before).replace(tzinfo=None)
        assert _matches(expression, named) or _matches(expression, in_gap)


def _matches(expression: str, wall: datetime) -> bool:
    from croniter import croniter

    return bool(croniter.match(expression, wall))
