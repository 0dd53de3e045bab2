"""Schedules against a real Redis (taskkit/schedules/), with time injected, not slept.

``sync(now=...)`` and ``Scheduler.tick(now=...)`` take the time as an argument, so every
outage, stall, race and DST night here takes milliseconds. The job functions live in
tests/apps/schedjobs.py, loaded through ``pythonpath:`` of a jobs.yaml in tmp_path.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq_scheduler import Scheduler as RqScheduler

from taskkit.registry import Registry, load
from taskkit.schedules import (
    RQ_SCHEDULER_JOBS_KEY,
    SCHEDULED_JOBS_KEY,
    STATE_KEY,
    Change,
    Scheduler,
    Tick,
    describe,
    schedule_id,
    sync,
)
from taskkit.worker import TaskkitJob, make_worker, prepare_process

APPS = Path(__file__).parent / "apps"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
JOBS: dict[str, Any] = {
    "tick": {"func": "schedjobs:tick"},
    "block": {"func": "schedjobs:block"},
    "report": {
        "func": "schedjobs:tick",
        "queue": "slow",
        "timeout": "42s",
        "result_ttl": 100,
        "failure_ttl": 200,
        "retry": {"max": 2, "intervals": ["5s", "10s"]},
    },
}


def write_config(tmp_path: Path, redis_url: str, schedules: dict[str, Any], **top: Any) -> Path:
    """A jobs.yaml in tmp_path with the test jobs and these schedules."""
    data = {
        "version": 1,
        "pythonpath": [str(APPS)],
        "redis": {"url": redis_url},
        "queues": {"default": {}, "slow": {}},
        "jobs": JOBS,
        "schedules": schedules,
        **top,
    }
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def configure(tmp_path: Path, redis_url: str, schedules: dict[str, Any], **top: Any) -> Registry:
    """Write jobs.yaml and load it afresh (a registry, and a Redis connection, of its own)."""
    return load(write_config(tmp_path, redis_url, schedules, **top), cached=False)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stored_next(conn: redis.Redis, name: str) -> datetime | None:
    score = conn.zscore(SCHEDULED_JOBS_KEY, schedule_id(name))
    return None if score is None else datetime.fromtimestamp(score, UTC)


def queued(registry: Registry, queue: str = "default") -> list[Job]:
    return registry.queue(queue).get_jobs()


def fired_ticks(registry: Registry, queue: str = "default") -> Counter[str]:
    """How many jobs each nominal tick (META taskkit_tick) produced."""
    return Counter(job.meta["taskkit_tick"] for job in queued(registry, queue))


def outcomes(ticks: list[Tick]) -> list[tuple[str, datetime]]:
    return [(tick.outcome, tick.nominal) for tick in ticks]


def outcomes_of(changes: list[Change]) -> list[tuple[str, str, datetime | None]]:
    """A sync plan without its unchanged entries."""
    return [(c.action, c.name, c.next_run) for c in changes if c.action != "unchanged"]


def snapshot(conn: redis.Redis) -> dict[bytes, Any]:
    """Every key of the database with its type and value, to compare before and after."""
    found: dict[bytes, Any] = {}
    for key in conn.scan_iter():
        kind = conn.type(key)
        if kind == b"zset":
            found[key] = conn.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            found[key] = conn.hgetall(key)
        elif kind == b"list":
            found[key] = conn.lrange(key, 0, -1)
        elif kind == b"set":
            found[key] = conn.smembers(key)
        else:
            found[key] = conn.get(key)
    return found


TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- sync ----------------------------------------------------------------------------------

MIXED: dict[str, dict[str, Any]] = {
    "beat": {"job": "tick", "every": "1m"},
    "nightly": {
        "job": "tick",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "kwargs": {"n": 1},
    },
    "launch": {"job": "tick", "at": "2030-06-01T12:00:00+00:00"},
    "paused": {"job": "tick", "every": "1m", "enabled": False},
}


def test_repeated_syncs_leave_one_entry_per_enabled_schedule_and_change_nothing(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, MIXED)
    first = sync(registry, now=T0)
    assert {c.name: c.action for c in first} == {
        "beat": "create",
        "nightly": "create",
        "launch": "create",
    }
    before = snapshot(redis_conn)
    for i in range(5):
        again = sync(registry, now=at(7 * i))
        assert {c.action for c in again} == {"unchanged"}
    assert snapshot(redis_conn) == before
    entries = dict(redis_conn.zrange(SCHEDULED_JOBS_KEY, 0, -1, withscores=True))  # type: ignore[arg-type]
    assert entries == {
        schedule_id("beat").encode(): at(60).timestamp(),
        schedule_id("nightly").encode(): datetime(2030, 1, 1, 2, tzinfo=UTC).timestamp(),
        schedule_id("launch").encode(): datetime(2030, 6, 1, 12, tzinfo=UTC).timestamp(),
    }


def test_schedule_ids_are_deterministic_and_distinct() -> None:
    assert schedule_id("nightly cleanup") == schedule_id("nightly cleanup")
    assert schedule_id("a.b") != schedule_id("a_b")  # the same once made safe, told apart
    assert schedule_id("nightly").startswith("taskkit-schedule-nightly-")


def test_a_changed_schedule_is_updated_in_place(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    beat = {"job": "tick", "every": "1m", "kwargs": {"n": 1}}
    registry = configure(tmp_path, redis_url, {"beat": beat})
    sync(registry, now=T0)
    assert stored_next(redis_conn, "beat") == at(60)

    # New kwargs at T0+90s: same entry, new template, and the stored next run is kept
    # (recomputing it would give T0+2m).
    registry = configure(tmp_path, redis_url, {"beat": {**beat, "kwargs": {"n": 2}}})
    assert outcomes_of(sync(registry, now=at(90))) == [("update", "beat", None)]
    template = Job.fetch(schedule_id("beat"), connection=redis_conn, serializer=JSONSerializer)
    assert template.kwargs == {"n": 2}
    assert stored_next(redis_conn, "beat") == at(60)
    assert redis_conn.zcard(SCHEDULED_JOBS_KEY) == 1

    # A changed job setting (its timeout) is a change of the schedule's runs too.
    changed = {**JOBS, "tick": {"func": "schedjobs:tick", "timeout": "7s"}}
    registry = configure(tmp_path, redis_url, {"beat": {**beat, "kwargs": {"n": 2}}}, jobs=changed)
    assert outcomes_of(sync(registry, now=at(90))) == [("update", "beat", None)]
    template = Job.fetch(schedule_id("beat"), connection=redis_conn, serializer=JSONSerializer)
    assert template.timeout == 7
    assert stored_next(redis_conn, "beat") == at(60)

    # New timing: recomputed from now.
    registry = configure(tmp_path, redis_url, {"beat": {**beat, "every": "5m"}})
    assert outcomes_of(sync(registry, now=at(90))) == [("update", "beat", at(300))]
    assert stored_next(redis_conn, "beat") == at(300)
    registry = configure(
        tmp_path, redis_url, {"beat": {**beat, "every": None, "cron": "0 3 * * *"}}
    )
    sync(registry, now=at(90))
    assert stored_next(redis_conn, "beat") == datetime(2030, 1, 1, 3, tzinfo=UTC)
    registry = configure(
        tmp_path,
        redis_url,
        {"beat": {**beat, "every": None, "cron": "0 3 * * *", "timezone": "Asia/Tokyo"}},
    )
    sync(registry, now=at(90))
    assert stored_next(redis_conn, "beat") == datetime(2030, 1, 1, 18, tzinfo=UTC)
    assert redis_conn.zcard(SCHEDULED_JOBS_KEY) == 1


def test_removed_and_disabled_schedules_are_pruned(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, MIXED)
    sync(registry, now=T0)
    left = {"beat": MIXED["beat"], "nightly": {**MIXED["nightly"], "enabled": False}}
    registry = configure(tmp_path, redis_url, left)
    assert sorted(outcomes_of(sync(registry, now=T0))) == [
        ("remove", "launch", None),
        ("remove", "nightly", None),
    ]
    assert redis_conn.zrange(SCHEDULED_JOBS_KEY, 0, -1) == [schedule_id("beat").encode()]
    for gone in ("launch", "nightly"):
        assert not redis_conn.exists(Job.key_for(schedule_id(gone)))
    # Enabling it again creates it again.
    registry = configure(tmp_path, redis_url, {**left, "nightly": MIXED["nightly"]})
    assert outcomes_of(sync(registry, now=T0)) == [
        ("create", "nightly", datetime(2030, 1, 1, 2, tzinfo=UTC))
    ]


def test_sync_forgets_the_last_runs_of_schedules_no_longer_in_the_file(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, MIXED)
    sync(registry, now=T0)
    for name in ("beat", "launch", "nightly", "renamed-long-ago"):
        redis_conn.hset(STATE_KEY, name, json.dumps({"nominal": 1.0, "outcome": "enqueued"}))
    fired_one_off = {"nominal": 1.0, "outcome": "enqueued", "one_off": True}
    redis_conn.hset(STATE_KEY, "done-once", json.dumps(fired_one_off))
    left = {"beat": MIXED["beat"], "nightly": {**MIXED["nightly"], "enabled": False}}
    sync(configure(tmp_path, redis_url, left), now=T0)
    # A disabled schedule keeps its record (it comes back with its history), and a fired
    # one-off keeps its own even out of the file: put back, it must not fire again.
    assert sorted(redis_conn.hkeys(STATE_KEY)) == [b"beat", b"done-once", b"nightly"]
    sync(configure(tmp_path, redis_url, left), now=T0, dry_run=True)
    assert sorted(redis_conn.hkeys(STATE_KEY)) == [b"beat", b"done-once", b"nightly"]


def test_entries_taskkit_did_not_create_are_left_alone(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    plain = RqScheduler(connection=redis_conn)
    with warnings.catch_warnings():
        # rq-scheduler's cron() calls crontab's next() in a way crontab warns about.
        warnings.simplefilter("ignore", FutureWarning)
        cron_job = plain.cron("*/5 * * * *", func="schedjobs.tick", id="reports-cron")
    every_job = plain.schedule(datetime(2030, 1, 1, 0, 0, 30), func="schedjobs.tick", interval=60)
    foreign = {cron_job.id, every_job.id}
    foreign_before = {
        job_id: (
            redis_conn.zscore(RQ_SCHEDULER_JOBS_KEY, job_id),
            redis_conn.hgetall(f"rq:job:{job_id}"),
        )
        for job_id in foreign
    }

    registry = configure(tmp_path, redis_url, MIXED)
    sync(registry, now=T0)
    registry = configure(tmp_path, redis_url, {"beat": {**MIXED["beat"], "kwargs": {"n": 5}}})
    sync(registry, now=T0)
    registry = configure(tmp_path, redis_url, {})
    assert {c.action for c in sync(registry, now=T0)} == {"remove"}

    # A taskkit scheduler does not fire them either, however late it is.
    registry = configure(tmp_path, redis_url, MIXED)
    sync(registry, now=T0)
    Scheduler(registry).tick(T0 + timedelta(days=400))
    foreign_after = {
        job_id: (
            redis_conn.zscore(RQ_SCHEDULER_JOBS_KEY, job_id),
            redis_conn.hgetall(f"rq:job:{job_id}"),
        )
        for job_id in foreign
    }
    assert foreign_after == foreign_before
    assert None not in {score for score, _ in foreign_after.values()}
    assert all(job.func_name == "schedjobs.tick" for job in queued(registry))
    assert all("taskkit_schedule" in job.meta for job in queued(registry))


def test_a_sync_moves_entries_left_in_rq_schedulers_set_keeping_their_next_run(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, MIXED)
    sync(registry, now=T0)
    # Where taskkit 0.2 kept them: rq-scheduler's set, in reach of an rqscheduler.
    before = dict(redis_conn.zrange(SCHEDULED_JOBS_KEY, 0, -1, withscores=True))  # type: ignore[arg-type]
    redis_conn.delete(SCHEDULED_JOBS_KEY)
    redis_conn.zadd(RQ_SCHEDULER_JOBS_KEY, {**before, "foreign-entry": 1.0})
    left = {k.decode(): v for k, v in before.items()}

    planned = sync(registry, now=T0 + timedelta(hours=1), dry_run=True)
    assert {(c.action, c.entry_id) for c in planned if c.action == "move"} == {
        ("move", entry_id) for entry_id in left
    }
    assert redis_conn.zcard(SCHEDULED_JOBS_KEY) == 0

    changes = sync(registry, now=T0 + timedelta(hours=1))
    assert {c.action for c in changes} == {"move", "unchanged"}
    assert dict(redis_conn.zrange(SCHEDULED_JOBS_KEY, 0, -1, withscores=True)) == before  # type: ignore[arg-type]
    assert redis_conn.zrange(RQ_SCHEDULER_JOBS_KEY, 0, -1) == [b"foreign-entry"]
    assert {c.action for c in sync(registry, now=T0 + timedelta(hours=1))} == {"unchanged"}


class TaskkitEntries(RqScheduler):  # type: ignore[misc]
    """rq-scheduler's API, read-only, on taskkit's set (as docs/schedules.md shows)."""

    scheduled_jobs_key = SCHEDULED_JOBS_KEY


def test_rq_schedulers_own_api_lists_taskkits_entries_from_taskkits_set(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, MIXED)
    sync(registry, now=T0)
    # rq-scheduler's own set holds none of them: an rqscheduler never fires them.
    assert RqScheduler(connection=redis_conn).count() == 0
    listed = {
        job.id: (when, job.origin, job.get_status(), job.description)
        for job, when in TaskkitEntries(connection=redis_conn).get_jobs(with_times=True)
    }
    # rq-scheduler's times are naive UTC.
    expected = {
        "beat": datetime(2030, 1, 1, 0, 1),
        "nightly": datetime(2030, 1, 1, 2, 0),
        "launch": datetime(2030, 6, 1, 12, 0),
    }
    assert listed == {
        schedule_id(name): (when, "default", JobStatus.SCHEDULED, f"schedule {name}: tick")
        for name, when in expected.items()
    }
    assert TaskkitEntries(connection=redis_conn).count() == 3
    assert schedule_id("beat") in TaskkitEntries(connection=redis_conn)


def test_sync_is_idempotent_with_the_pickle_serializer(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, MIXED, serializer="pickle")
    sync(registry, now=T0)
    before = snapshot(redis_conn)
    assert {c.action for c in sync(registry, now=at(5))} == {"unchanged"}
    assert snapshot(redis_conn) == before
    assert {view.state for view in describe(registry, now=T0)} == {"active", "disabled"}


# -- one fire per tick, whatever the number of schedulers ---------------------------------


def test_three_schedulers_fire_every_tick_exactly_once(tmp_path: Path, redis_url: str) -> None:
    path = write_config(
        tmp_path, redis_url, {"pulse": {"job": "tick", "every": "1s", "overlap": "allow"}}
    )
    # Three schedulers, each with a registry and a Redis connection of its own.
    schedulers = [Scheduler(load(path, cached=False)) for _ in range(3)]
    assert len({id(s.conn) for s in schedulers}) == 3
    sync(schedulers[0].registry, now=T0)
    rng = random.Random(20300101)
    seen: Counter[str] = Counter()

    # Interleaved: all three read what is due, then claim it in a random order.
    for second in range(1, 61):
        now = at(second + rng.uniform(0, 0.9))
        read = [(s, s.due(now)) for s in schedulers]
        rng.shuffle(read)
        for scheduler, entries in read:
            assert len(entries) == 1
            seen.update(scheduler.fire(entry, now).outcome for entry in entries)
    assert seen == {"enqueued": 60, "lost-race": 120}

    # Truly concurrent: three threads released together for each injected second.
    barrier = threading.Barrier(3)

    def run(scheduler: Scheduler, seed: int) -> list[Tick]:
        lateness = random.Random(seed)
        ticks = []
        for second in range(61, 121):
            barrier.wait(timeout=20)
            ticks += scheduler.tick(at(second + lateness.uniform(0, 0.9)))
        return ticks

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, schedulers, range(3)))
    concurrent = Counter(t.outcome for ticks in results for t in ticks)
    assert concurrent["enqueued"] == 60
    assert set(concurrent) <= {"enqueued", "lost-race"}

    fired = fired_ticks(schedulers[0].registry)
    assert fired == Counter({at(k).isoformat(): 1 for k in range(1, 121)})


def test_a_stalled_scheduler_loses_the_race_instead_of_firing_twice(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path, redis_url, {"pulse": {"job": "tick", "every": "1s", "overlap": "allow"}}
    )
    a, b = Scheduler(load(path, cached=False)), Scheduler(load(path, cached=False))
    sync(a.registry, now=T0)

    # A reads the due entry for T0+1s, then stalls; B fires that tick and the next ones.
    [stale] = a.due(at(1))
    for second in range(1, 6):
        assert outcomes(b.tick(at(second))) == [("enqueued", at(second))]
    # A wakes up, long after any lock it might have held would have expired.
    assert a.fire(stale, at(40)).outcome == "lost-race"

    # A stalls inside its claim, after reading the entry and deciding, before it commits:
    # B fires the tick meanwhile, and A's transaction is refused.
    decide = a._decide

    def slow_decide(*args: Any) -> Any:
        decision = decide(*args)
        if not b_fired:
            b_fired.append(b.tick(at(6)))
        return decision

    b_fired: list[list[Tick]] = []
    monkeypatch.setattr(a, "_decide", slow_decide)
    assert outcomes(a.tick(at(6))) == [("lost-race", at(6))]
    assert outcomes(b_fired[0]) == [("enqueued", at(6))]

    assert fired_ticks(a.registry) == Counter({at(k).isoformat(): 1 for k in range(1, 7)})


def test_a_scheduler_running_another_jobs_yaml_leaves_the_ticks_alone(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    beat = {"job": "tick", "every": "1m", "kwargs": {"n": 1}, "overlap": "allow"}
    old = configure(tmp_path / "old", redis_url, {"beat": beat})
    new = configure(
        tmp_path / "new", redis_url, {"beat": {**beat, "every": "5m", "kwargs": {"n": 2}}}
    )
    sync(old, now=T0)
    sync(new, now=T0)  # a deploy synced the new file; a scheduler on the old one still runs
    stale, current = Scheduler(old), Scheduler(new)

    with caplog.at_level("WARNING", logger="taskkit.scheduler"):
        for _ in range(3):
            assert outcomes(stale.tick(at(300))) == [("stale-config", at(300))]
    assert len([r for r in caplog.records if "another version" in r.getMessage()]) == 1
    assert stored_next(redis_conn, "beat") == at(300)  # not moved along the old timing
    assert queued(new) == []

    [tick] = current.tick(at(300))
    assert (tick.outcome, tick.nominal) == ("enqueued", at(300))
    assert [job.kwargs for job in queued(new)] == [{"n": 2}]
    assert stored_next(redis_conn, "beat") == at(600)


# -- timing --------------------------------------------------------------------------------


def test_every_does_not_drift_over_100_late_ticks(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(
        tmp_path, redis_url, {"pulse": {"job": "tick", "every": "1s", "overlap": "allow"}}
    )
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    rng = random.Random(7)
    for k in range(1, 101):
        ticks = scheduler.tick(at(k + rng.uniform(0, 0.9)))
        assert outcomes(ticks) == [("enqueued", at(k))]
        assert stored_next(redis_conn, "pulse") == at(k + 1)
    assert fired_ticks(registry) == Counter({at(k).isoformat(): 1 for k in range(1, 101)})


DST_NIGHTS = [
    pytest.param(
        "Europe/Berlin",
        ("2025-03-29 22:00", "2025-03-30 02:59"),
        {
            "30 2 * * *": ["03-30 01:30"],
            "30 * * * *": [
                "03-29 22:30",
                "03-29 23:30",
                "03-30 00:30",
                "03-30 01:30",
                "03-30 02:30",
            ],
            "0 * * * *": ["03-29 23:00", "03-30 00:00", "03-30 01:00", "03-30 02:00"],
        },
        id="berlin-spring-forward",
    ),
    pytest.param(
        "Europe/Berlin",
        ("2025-10-25 22:00", "2025-10-26 02:59"),
        {
            "30 2 * * *": ["10-26 00:30"],
            "30 * * * *": [
                "10-25 22:30",
                "10-25 23:30",
                "10-26 00:30",
                "10-26 01:30",
                "10-26 02:30",
            ],
            "0 * * * *": ["10-25 23:00", "10-26 00:00", "10-26 01:00", "10-26 02:00"],
        },
        id="berlin-fall-back",
    ),
    pytest.param(
        "America/New_York",
        ("2025-03-09 05:00", "2025-03-09 08:59"),
        {
            "30 2 * * *": ["03-09 07:30"],
            "30 * * * *": ["03-09 05:30", "03-09 06:30", "03-09 07:30", "03-09 08:30"],
            "0 * * * *": ["03-09 06:00", "03-09 07:00", "03-09 08:00"],
        },
        id="new-york-spring-forward",
    ),
    pytest.param(
        "America/New_York",
        ("2025-11-02 03:00", "2025-11-02 07:59"),
        {
            "30 1 * * *": ["11-02 05:30"],
            "30 * * * *": [
                "11-02 03:30",
                "11-02 04:30",
                "11-02 05:30",
                "11-02 06:30",
                "11-02 07:30",
            ],
            "0 * * * *": ["11-02 04:00", "11-02 05:00", "11-02 06:00", "11-02 07:00"],
        },
        id="new-york-fall-back",
    ),
]


@pytest.mark.parametrize(("timezone", "night", "expected"), DST_NIGHTS)
def test_ticks_across_a_dst_night_fire_at_the_documented_instants(
    tmp_path: Path, redis_url: str, timezone: str, night: tuple[str, str], expected: dict[str, Any]
) -> None:
    """``expected`` maps each cron expression to the UTC instants it fires at."""
    crons = {f"cron-{i}": expression for i, expression in enumerate(expected)}
    schedules = {
        name: {"job": "tick", "cron": expression, "timezone": timezone, "overlap": "allow"}
        for name, expression in crons.items()
    }
    registry = configure(tmp_path, redis_url, schedules)
    start, end = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in night)
    sync(registry, now=start)
    scheduler = Scheduler(registry)
    fired: dict[str, list[str]] = {name: [] for name in expected}
    now = start
    while now <= end:  # a pass every minute, on time
        for tick in scheduler.tick(now):
            assert tick.outcome == "enqueued"
            assert tick.nominal == now
            fired[crons[tick.schedule]].append(tick.nominal.strftime("%m-%d %H:%M"))
        now += timedelta(minutes=1)
    assert fired == expected
    assert sum(fired_ticks(registry).values()) == sum(len(v) for v in expected.values())


# -- misfire -------------------------------------------------------------------------------


def test_misfire_once_runs_one_catch_up_after_an_outage(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(
        tmp_path, redis_url, {"beat": {"job": "tick", "every": "1m", "overlap": "allow"}}
    )
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    # No scheduler ran for ten minutes: ten ticks were missed; one run stands for them.
    assert outcomes(scheduler.tick(at(600))) == [("enqueued", at(60))]
    assert stored_next(redis_conn, "beat") == at(660)  # the next future grid point
    assert scheduler.tick(at(630)) == []
    assert outcomes(scheduler.tick(at(660))) == [("enqueued", at(660))]
    assert fired_ticks(registry) == Counter({at(60).isoformat(): 1, at(660).isoformat(): 1})


def test_misfire_skip_drops_ticks_later_than_grace(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    beat = {"job": "tick", "every": "1m", "overlap": "allow", "misfire": "skip", "grace": "30s"}
    registry = configure(tmp_path, redis_url, {"beat": beat})
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    # Ten minutes without a scheduler, and the newest tick (T0+10m) is 45 s late: nothing.
    assert outcomes(scheduler.tick(at(645))) == [("skipped-misfire", at(60))]
    assert queued(registry) == []
    assert stored_next(redis_conn, "beat") == at(660)
    # Late by less than grace, or by exactly grace: it runs.
    assert outcomes(scheduler.tick(at(680))) == [("enqueued", at(660))]
    assert outcomes(scheduler.tick(at(750))) == [("enqueued", at(720))]
    # After another outage, the entry's own tick is far too late, but the newest missed
    # tick (T0+20m) is only 10 s late: that one runs, once.
    assert outcomes(scheduler.tick(at(1210))) == [("enqueued", at(1200))]
    assert stored_next(redis_conn, "beat") == at(1260)
    assert fired_ticks(registry) == Counter(
        {at(660).isoformat(): 1, at(720).isoformat(): 1, at(1200).isoformat(): 1}
    )


def test_misfire_skip_without_grace_allows_a_minute(tmp_path: Path, redis_url: str) -> None:
    beat = {"job": "tick", "every": "1h", "overlap": "allow", "misfire": "skip"}
    registry = configure(tmp_path, redis_url, {"beat": beat})
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    assert outcomes(scheduler.tick(at(3600 + 59))) == [("enqueued", at(3600))]
    assert outcomes(scheduler.tick(at(7200 + 61))) == [("skipped-misfire", at(7200))]


# -- overlap -------------------------------------------------------------------------------


@pytest.fixture
def worker_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo what running a worker in this process sets process-wide."""
    monkeypatch.setenv("TASKKIT_CONFIG", "unset")
    monkeypatch.setattr(TaskkitJob, "registry", None)


@pytest.mark.usefixtures("worker_process_state")
def test_overlap_skip_while_the_previous_run_is_queued(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url, {"beat": {"job": "tick", "every": "1m"}})
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    [first] = scheduler.tick(at(60))
    assert first.outcome == "enqueued"
    assert outcomes(scheduler.tick(at(120))) == [("skipped-overlap", at(120))]
    assert outcomes(scheduler.tick(at(180))) == [("skipped-overlap", at(180))]
    assert [job.id for job in queued(registry)] == [first.job_id]

    prepare_process(registry, fork_hygiene=False)
    make_worker(registry, worker_class="simple").work(burst=True)
    assert Job.fetch(str(first.job_id), connection=redis_conn).get_status() == JobStatus.FINISHED
    assert outcomes(scheduler.tick(at(240))) == [("enqueued", at(240))]


def test_overlap_skip_while_the_previous_run_is_running(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    hold = {"job": "block", "every": "1m", "kwargs": {"key": "test:release"}}
    path = write_config(tmp_path, redis_url, {"hold": hold})
    registry = load(path, cached=False)
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    [first] = scheduler.tick(at(60))
    job = Job.fetch(str(first.job_id), connection=redis_conn, serializer=JSONSerializer)

    worker = subprocess.Popen(
        [*TASKKIT, "run-worker", "-c", str(path), "--burst", "--worker-class", "simple"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: job.get_status() == JobStatus.STARTED, "the job to start")
        assert outcomes(scheduler.tick(at(120))) == [("skipped-overlap", at(120))]
        redis_conn.rpush("test:release", "go")
        output, _ = worker.communicate(timeout=30)
    finally:
        worker.kill()
    assert worker.returncode == 0, output.decode()
    assert job.get_status() == JobStatus.FINISHED
    assert outcomes(scheduler.tick(at(180))) == [("enqueued", at(180))]


def test_overlap_allow_enqueues_while_the_previous_run_is_queued(
    tmp_path: Path, redis_url: str
) -> None:
    beat = {"job": "tick", "every": "1m", "overlap": "allow"}
    registry = configure(tmp_path, redis_url, {"beat": beat})
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    for minute in (1, 2, 3):
        assert outcomes(scheduler.tick(at(60 * minute))) == [("enqueued", at(60 * minute))]
    assert len(queued(registry)) == 3


# -- one-off and per-job settings ----------------------------------------------------------


def test_at_fires_once_and_a_later_sync_does_not_recreate_it(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    launch = {"job": "tick", "at": "2030-01-01T00:05:00+00:00", "kwargs": {"n": 7}}
    registry = configure(tmp_path, redis_url, {"launch": launch})
    assert outcomes_of(sync(registry, now=T0)) == [("create", "launch", at(300))]
    scheduler = Scheduler(registry)
    assert scheduler.tick(at(299)) == []
    assert outcomes(scheduler.tick(at(302))) == [("enqueued", at(300))]
    assert stored_next(redis_conn, "launch") is None
    assert not redis_conn.exists(Job.key_for(schedule_id("launch")))

    assert outcomes_of(sync(registry, now=at(360))) == []
    assert stored_next(redis_conn, "launch") is None
    assert scheduler.tick(at(86400)) == []
    [job] = queued(registry)
    assert job.kwargs == {"n": 7}
    [view] = describe(registry, now=at(360))
    assert (view.state, view.upcoming) == ("done", [])

    # Taken out of the file and put back (a revert): still done, it does not fire again.
    sync(configure(tmp_path, redis_url, {}), now=at(400))
    registry = configure(tmp_path, redis_url, {"launch": launch})
    assert outcomes_of(sync(registry, now=at(500))) == []
    assert scheduler.tick(at(86400)) == []

    # Moved to a new time, it is a new one-off.
    registry = configure(tmp_path, redis_url, {"launch": {**launch, "at": "2030-01-02T00:00:00Z"}})
    assert outcomes_of(sync(registry, now=at(360))) == [
        ("create", "launch", datetime(2030, 1, 2, tzinfo=UTC))
    ]


def test_an_at_in_the_past_runs_once_at_the_next_pass(tmp_path: Path, redis_url: str) -> None:
    registry = configure(
        tmp_path, redis_url, {"launch": {"job": "tick", "at": "2029-12-31T23:00:00Z"}}
    )
    [view] = describe(registry, now=T0)
    assert view.state == "not synced"
    sync(registry, now=T0)
    scheduler = Scheduler(registry)
    assert outcomes(scheduler.tick(at(1))) == [("enqueued", datetime(2029, 12, 31, 23, tzinfo=UTC))]
    assert scheduler.tick(at(2)) == []
    sync(registry, now=at(3))
    assert scheduler.tick(at(4)) == []
    assert len(queued(registry)) == 1


def test_scheduled_runs_carry_the_jobs_queue_timeout_and_retry(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(
        tmp_path, redis_url, {"weekly": {"job": "report", "every": "1m", "kwargs": {"n": 3}}}
    )
    sync(registry, now=T0)
    [tick] = Scheduler(registry).tick(at(60))
    job = Job.fetch(str(tick.job_id), connection=redis_conn, serializer=JSONSerializer)
    assert registry.queue("slow").job_ids == [job.id]
    assert queued(registry, "default") == []
    assert job.origin == "slow"
    assert job.timeout == 42
    assert (job.retries_left, job.retry_intervals) == (2, [5, 10])
    assert (job.result_ttl, job.failure_ttl) == (100, 200)
    assert (job.func_name, list(job.args), job.kwargs) == ("schedjobs.tick", [], {"n": 3})
    assert job.meta == {
        "taskkit_job": "report",
        "taskkit_schedule": "weekly",
        "taskkit_tick": at(60).isoformat(),
    }
    assert job.get_status() == JobStatus.QUEUED


# -- a running scheduler follows the store -------------------------------------------------


def jobs_of(registry: Registry, name: str) -> list[Job]:
    return [job for job in queued(registry) if job.meta.get("taskkit_schedule") == name]


def test_a_running_scheduler_picks_up_added_changed_and_removed_schedules(
    tmp_path: Path, redis_url: str
) -> None:
    every_minute = {"job": "tick", "every": "1m", "overlap": "allow"}
    path = write_config(
        tmp_path, redis_url, {"beat": {**every_minute, "kwargs": {"n": 1}}, "gone": every_minute}
    )
    scheduler = Scheduler(load(path, cached=False))
    sync(scheduler.registry, now=T0)
    assert sorted(t.schedule for t in scheduler.tick(at(60))) == ["beat", "gone"]

    # A deploy edits the file and syncs it, while this scheduler runs.
    changed = {"beat": {**every_minute, "kwargs": {"n": 2}}, "added": every_minute}
    write_config(tmp_path, redis_url, changed)
    sync(load(path, cached=False), now=at(61))

    ticks = scheduler.tick(at(120))
    assert sorted((t.schedule, t.outcome, t.nominal) for t in ticks) == [
        ("added", "enqueued", at(120)),
        ("beat", "enqueued", at(120)),
    ]
    assert [job.kwargs for job in jobs_of(scheduler.registry, "beat")] == [{"n": 1}, {"n": 2}]
    assert len(jobs_of(scheduler.registry, "gone")) == 1, "the removed one fired no more"


def test_a_scheduler_keeps_its_schedules_while_its_file_is_not_the_one_synced(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An edit that was not synced, or a file that no longer loads, changes nothing."""
    beat = {"job": "tick", "every": "1m", "overlap": "allow"}
    path = write_config(tmp_path, redis_url, {"beat": beat})
    scheduler = Scheduler(load(path, cached=False))
    sync(scheduler.registry, now=T0)

    write_config(tmp_path, redis_url, {"beat": beat, "draft": beat})  # edited, not synced
    assert outcomes(scheduler.tick(at(60))) == [("enqueued", at(60))]

    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other", redis_url, {"beat": {**beat, "every": "2m"}})
    path.write_text("version: 1\njobs: [")  # half-written
    sync(load(other, cached=False), now=at(61))  # another file was synced meanwhile
    with caplog.at_level("WARNING", logger="taskkit.scheduler"):
        for moment in (120, 180):  # left to a scheduler that has the synced file
            assert outcomes(scheduler.tick(at(moment))) == [("stale-config", at(120))]
    unreadable = [r for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(unreadable) == 1, "one warning per version of the file, not one per pass"
    assert "going on with the schedules it had" in unreadable[0].getMessage()


def test_a_scheduler_syncs_again_when_redis_lost_the_schedules(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    """Redis restarted without persistence: the store, the last-run records and the queued
    jobs are gone. The ticks missed since the last pass follow their misfire policy, as
    after any outage, and a one-off that already ran does not run again."""
    every_second = {"job": "tick", "every": "1s", "overlap": "allow"}
    schedules = {
        "pulse": every_second,  # misfire: once
        "strict": {**every_second, "misfire": "skip", "grace": "3s"},
        "launch": {"job": "tick", "at": at(2).isoformat()},
    }
    path = write_config(tmp_path, redis_url, schedules)
    scheduler = Scheduler(load(path, cached=False))
    sync(scheduler.registry, now=T0)
    for second in range(1, 6):
        scheduler.tick(at(second))

    redis_conn.flushdb()  # the restart; the last pass that fired everything was at T0+5s
    ticks = scheduler.tick(at(12.5))

    assert sorted((t.schedule, t.outcome, t.nominal) for t in ticks) == [
        ("pulse", "enqueued", at(6)),  # one catch-up for the missed ticks
        ("strict", "enqueued", at(10)),  # the first missed tick within grace
    ]
    assert stored_next(redis_conn, "pulse") == stored_next(redis_conn, "strict") == at(13)
    assert stored_next(redis_conn, "launch") is None
    record = json.loads(redis_conn.hget(STATE_KEY, "launch") or "{}")
    assert record["outcome"] == "handled before Redis lost its data"
    # A sync by hand later (a deploy) does not bring the one-off back either.
    assert "launch" not in {c.name for c in sync(load(path, cached=False), now=at(13))}
    assert scheduler.tick(at(13.5)) != [] and stored_next(redis_conn, "launch") is None
