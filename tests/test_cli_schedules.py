"""The schedule commands: ``schedules sync``/``list`` (CliRunner), ``run-scheduler`` and
``run-worker --with-scheduler`` (real processes), against a real Redis.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from taskkit.cli import cli
from taskkit.registry import Registry, load
from taskkit.schedules import (
    SCHEDULED_JOBS_KEY,
    SCHEDULER_KEY_PREFIX,
    STATE_KEY,
    Scheduler,
    schedule_id,
    sync,
)
from taskkit.timing import next_fire_times

APPS = Path(__file__).parent / "apps"
TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]
JOBS = {"tick": {"func": "schedjobs:tick"}, "record": {"func": "schedjobs:record"}}


def write_config(tmp_path: Path, redis_url: str, schedules: dict[str, Any]) -> Path:
    path = tmp_path / "jobs.yaml"
    data = {
        "version": 1,
        "pythonpath": [str(APPS)],
        "redis": {"url": redis_url},
        "jobs": JOBS,
        "schedules": schedules,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def score(conn: redis.Redis, name: str) -> float:
    """The stored next run of schedule ``name`` (Unix time)."""
    found = conn.zscore(SCHEDULED_JOBS_KEY, schedule_id(name))
    assert found is not None, f"{name} is not in Redis"
    return found


def taskkit(*args: str) -> subprocess.CompletedProcess[str]:
    """The console entry point in a process of its own: exit codes and error lines."""
    return subprocess.run(
        [*TASKKIT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def snapshot(conn: redis.Redis) -> dict[bytes, Any]:
    found: dict[bytes, Any] = {}
    for key in conn.scan_iter():
        kind = conn.type(key)
        if kind == b"zset":
            found[key] = conn.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            found[key] = conn.hgetall(key)
        else:
            found[key] = conn.dump(key)
    return found


def test_sync_dry_run_prints_the_plan_and_changes_nothing(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    beat = {"job": "tick", "every": "1m", "kwargs": {"n": 1}}
    nightly = {"job": "tick", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    path = write_config(tmp_path, redis_url, {"beat": beat, "nightly": nightly})

    output = invoke("schedules", "sync", "-c", str(path), "--dry-run")
    assert "create    beat next 20" in output
    assert "create    nightly next 20" in output
    assert output.rstrip().endswith("dry run: 2 to create, 0 to update, 0 to remove")
    assert redis_conn.dbsize() == 0

    output = invoke("schedules", "sync", "-c", str(path))
    assert output.rstrip().endswith("2 created, 0 updated, 0 removed")
    before = snapshot(redis_conn)
    output = invoke("schedules", "sync", "-c", str(path))
    assert output.rstrip().endswith("0 created, 0 updated, 0 removed")
    assert snapshot(redis_conn) == before

    changed = {"beat": {**beat, "kwargs": {"n": 2}}, "hourly": {"job": "tick", "cron": "0 * * * *"}}
    write_config(tmp_path, redis_url, changed)
    output = invoke("schedules", "sync", "-c", str(path), "--dry-run")
    lines = output.splitlines()
    assert "update    beat" in lines
    assert any(line.startswith("create    hourly next 20") for line in lines)
    assert "remove    nightly" in lines
    assert lines[-1] == "dry run: 1 to create, 1 to update, 1 to remove"
    assert snapshot(redis_conn) == before


def test_schedules_list_shows_local_and_utc_times_last_run_and_state(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    schedules = {
        "nightly": {"job": "tick", "cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        "beat": {"job": "tick", "every": "1h"},
        "paused": {"job": "tick", "every": "1m", "enabled": False},
    }
    path = write_config(tmp_path, redis_url, schedules)
    registry = load(path, cached=False)
    now = datetime.now(UTC)
    sync(registry, now=now)
    stored = score(redis_conn, "beat")
    [tick] = Scheduler(registry).tick(datetime.fromtimestamp(stored, UTC))

    # A schedule added to the file but not synced yet.
    write_config(tmp_path, redis_url, {**schedules, "new": {"job": "tick", "every": "5m"}})
    output = invoke("schedules", "list", "-c", str(path), "--count", "2")
    blocks = _blocks(output)

    assert blocks["nightly"][0] == "nightly  [active]  job=tick  cron 0 3 * * * Europe/Berlin"
    berlin = registry.config.schedules["nightly"]
    expected = [
        f"next  {moment.astimezone(berlin.tz).isoformat()}  "
        f"({moment.strftime('%Y-%m-%d %H:%M:%S')} UTC)"
        for moment in next_fire_times(berlin, now, 2)
    ]
    assert blocks["nightly"][1:3] == expected
    assert "T03:00:00+0" in blocks["nightly"][1]
    assert blocks["nightly"][-1] == "last  never"

    assert blocks["beat"][0].startswith("beat  [active]")
    nominal = datetime.fromtimestamp(stored, UTC).isoformat()
    assert blocks["beat"][-1] == f"last  {nominal} enqueued job {tick.job_id}"
    assert blocks["paused"][0].startswith("paused  [disabled]")
    assert blocks["new"][0].startswith("new  [not synced]")


def _blocks(output: str) -> dict[str, list[str]]:
    """The list output by schedule: its header line, then its indented lines."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in output.splitlines():
        if line and not line.startswith(" "):
            current = [line]
            blocks[line.split()[0]] = current
        elif line.strip():
            current.append(line.strip())
    return blocks


def test_three_scheduler_processes_enqueue_each_tick_once(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    """Two `run-scheduler` and one `run-worker --with-scheduler`, which also runs the ticks."""
    path = write_config(
        tmp_path, redis_url, {"pulse": {"job": "tick", "every": "1s", "overlap": "allow"}}
    )
    scheduler = [*TASKKIT, "run-scheduler", "-c", str(path), "--interval", "0.2"]
    worker = [*TASKKIT, "run-worker", "-c", str(path), "--with-scheduler", "--worker-class",
              "simple"]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for command in (scheduler, scheduler, worker)
    ]
    try:
        deadline = time.monotonic() + 20
        while len(list(redis_conn.scan_iter(f"{SCHEDULER_KEY_PREFIX}*"))) < 3:
            assert time.monotonic() < deadline, "the schedulers did not start"
            assert all(p.poll() is None for p in processes), "a scheduler exited"
            time.sleep(0.05)
        time.sleep(5)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [_finish(process) for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output

    registry = load(path, cached=False)
    # Queued or already run by the worker: every job the ticks made, wherever it is now.
    ids = [key.decode().removeprefix("rq:job:") for key in redis_conn.scan_iter("rq:job:*")]
    jobs = [
        job
        for job in Job.fetch_many(ids, connection=redis_conn, serializer=registry.serializer)
        if job is not None and "taskkit_tick" in job.meta
    ]
    assert any(job.get_status() == "finished" for job in jobs), "the worker ran none"
    ticks = Counter(job.meta["taskkit_tick"] for job in jobs)
    assert ticks, "nothing was enqueued"
    assert set(ticks.values()) == {1}, ticks
    nominal = sorted(datetime.fromisoformat(t) for t in ticks)
    assert len(nominal) >= 4
    assert nominal == [nominal[0] + timedelta(seconds=k) for k in range(len(nominal))]
    assert list(redis_conn.scan_iter(f"{SCHEDULER_KEY_PREFIX}*")) == []  # each said goodbye


def _finish(process: subprocess.Popen[bytes]) -> str:
    """The output of a process that was asked to stop; killed if it does not."""
    try:
        return process.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0].decode() + "\n(killed: did not stop on SIGTERM)"


def test_run_worker_with_scheduler_burst_syncs_and_runs_due_ticks(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    beat = {"job": "record", "every": "1h", "kwargs": {"value": "hello"}}
    path = write_config(tmp_path, redis_url, {"beat": beat})
    # Synced two hours ago, and no scheduler ran since: the entry is overdue.
    sync(load(path, cached=False), now=datetime.now(UTC) - timedelta(hours=2))
    overdue = score(redis_conn, "beat")
    assert overdue < time.time()
    # A schedule the command's own sync has to create.
    write_config(tmp_path, redis_url, {"beat": beat, "fresh": {"job": "tick", "every": "1h"}})

    result = subprocess.run(
        [*TASKKIT, "run-worker", "-c", str(path), "--with-scheduler", "--burst"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output

    [raw] = redis_conn.lrange("schedjobs:record", 0, -1)
    recorded = json.loads(raw)
    assert recorded == {
        "value": "hello",
        "tick": datetime.fromtimestamp(overdue, UTC).isoformat(),
    }
    assert redis_conn.zscore(SCHEDULED_JOBS_KEY, schedule_id("fresh")) is not None
    assert score(redis_conn, "beat") > time.time()
    state = json.loads(redis_conn.hget(STATE_KEY, "beat") or "{}")
    job = Job.fetch(state["job_id"], connection=redis_conn)
    assert job.get_status() == "finished"
    assert _registry_queue_empty(load(path, cached=False))


def _registry_queue_empty(registry: Registry) -> bool:
    return all(registry.queue(name).count == 0 for name in registry.queue_names)


# -- schedules run: a run by hand ----------------------------------------------------------------


def test_schedules_run_enqueues_now_and_leaves_the_next_tick(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    schedules = {"beat": {"job": "record", "every": "1h", "args": ["by-hand"]}}
    path = write_config(tmp_path, redis_url, schedules)
    registry = load(path, cached=False)
    sync(registry)
    stored = score(redis_conn, "beat")

    job_id = invoke("schedules", "run", "-c", str(path), "beat").strip()

    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.args == ["by-hand"]
    assert job.origin == registry.jobs["record"].settings.queue
    assert job_id.encode() in redis_conn.lrange(f"rq:queue:{job.origin}", 0, -1)
    assert score(redis_conn, "beat") == stored, "the next tick did not move"
    listed = _blocks(invoke("schedules", "list", "-c", str(path)))["beat"]
    assert any(line.startswith("last  ") and f"run by hand job {job_id}" in line for line in listed)


def test_schedules_run_respects_overlap_skip_both_ways(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    path = write_config(tmp_path, redis_url, {"beat": {"job": "tick", "every": "1h"}})
    registry = load(path, cached=False)
    sync(registry)
    first = invoke("schedules", "run", "-c", str(path), "beat").strip()

    # While the run by hand is queued, the schedule's own tick is skipped ...
    due = datetime.fromtimestamp(score(redis_conn, "beat"), UTC)
    [tick] = Scheduler(registry).tick(due)
    assert tick.outcome == "skipped-overlap"
    # ... and so is a second run by hand, unless forced.
    refused = taskkit("schedules", "run", "-c", str(path), "beat")
    assert refused.returncode == 1
    assert f"its last run (job {first}) is still queued or running" in refused.stderr
    assert "pass --force" in refused.stderr
    forced = invoke("schedules", "run", "-c", str(path), "beat", "--force").strip()
    assert forced != first


def test_schedules_run_of_an_unknown_schedule_names_the_known_ones(
    tmp_path: Path, redis_url: str
) -> None:
    path = write_config(tmp_path, redis_url, {"beat": {"job": "tick", "every": "1h"}})
    done = taskkit("schedules", "run", "-c", str(path), "baet")
    assert done.returncode == 1
    assert done.stderr.startswith("error: no schedule 'baet'")
    assert "(schedules: beat)" in done.stderr and "Traceback" not in done.stderr


# -- a running scheduler follows syncs -----------------------------------------------------------


def last_run(conn: redis.Redis, name: str) -> dict[str, Any]:
    """Schedule ``name``'s last-run record ({} if none)."""
    return json.loads(conn.hget(STATE_KEY, name) or "{}")


def wait_until(condition: Any, what: str, process: subprocess.Popen[bytes]) -> None:
    """Poll until ``condition`` holds; fail if the process exits or 60 s pass."""
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"the scheduler exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("command", ["run-scheduler", "run-worker --with-scheduler"])
def test_a_running_scheduler_fires_an_added_schedule_within_5_s_of_a_sync_and_stops_a_removed_one(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis, command: str
) -> None:
    every_second = {"job": "tick", "every": "1s", "overlap": "allow"}
    path = write_config(tmp_path, redis_url, {"beat": {**every_second, "kwargs": {"n": 1}}})
    with (tmp_path / "scheduler.log").open("wb") as log:
        process = subprocess.Popen(
            [*TASKKIT, *command.split(), "-c", str(path)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: last_run(redis_conn, "beat"), "the first tick", process)

        # Added, and changed: both fire (the changed one with its new arguments) within 5 s.
        changed = {"beat": {**every_second, "kwargs": {"n": 2}}, "added": every_second}
        write_config(tmp_path, redis_url, changed)
        invoke("schedules", "sync", "-c", str(path))
        synced_at = time.time()
        wait_until(lambda: last_run(redis_conn, "added"), "the added schedule to fire", process)
        added = last_run(redis_conn, "added")
        wait_until(lambda: job_kwargs(redis_conn, "beat") == {"n": 2}, "new arguments", process)
        changed_at = last_run(redis_conn, "beat")["at"]  # the scheduler's own clock
        print(f"\n{command}: fired {added['at'] - synced_at:.2f} s after the sync (added), "
              f"{changed_at - synced_at:.2f} s (changed)")  # fmt: skip
        assert added["at"] - synced_at < 5
        assert changed_at - synced_at < 5

        # Removed: it stops, while the schedule that stays fires three more ticks.
        write_config(tmp_path, redis_url, {"beat": {**every_second, "kwargs": {"n": 2}}})
        invoke("schedules", "sync", "-c", str(path))
        removed_at = time.time()
        assert not last_run(redis_conn, "added"), "sync forgets a removed schedule's record"
        wait_until(
            lambda: last_run(redis_conn, "beat")["nominal"] >= removed_at + 3,
            "three more ticks of the schedule that stays",
            process,
        )
        assert not last_run(redis_conn, "added"), "the removed schedule fired again"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = (tmp_path / "scheduler.log").read_text()
    assert process.returncode == 0, output
    assert "picked up the schedules synced from" in output
    assert "Traceback" not in output


def job_kwargs(conn: redis.Redis, name: str) -> dict[str, Any] | None:
    """The keyword arguments of schedule ``name``'s last enqueued job."""
    job_id = last_run(conn, name).get("job_id")
    if job_id is None:
        return None
    try:
        return dict(Job.fetch(job_id, connection=conn, serializer=JSONSerializer).kwargs)
    except NoSuchJobError:  # a worker ran it and RQ removed it: look at the next one
        return None
