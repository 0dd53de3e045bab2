"""rq-scheduler's real ``rqscheduler`` beside ``taskkit run-scheduler`` on one database.

A team mid-migration runs both: its own rq-scheduler schedules keep firing from
``rqscheduler``, taskkit's from taskkit's schedulers, and neither process crashes, fires,
removes or doubles the other's entries, also while taskkit's scheduler is stopped (a
deploy) and its entries come due with only ``rqscheduler`` running.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import yaml
from click.testing import CliRunner
from rq.job import Job
from rq_scheduler import Scheduler as RqScheduler

from taskkit.cli import cli
from taskkit.registry import load
from taskkit.schedules import RQ_SCHEDULER_JOBS_KEY, SCHEDULED_JOBS_KEY, schedule_id

pytestmark = pytest.mark.slow

APPS = Path(__file__).parent / "apps"
MIGRATE_APPS = APPS / "migrateapps"
TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]
RQSCHEDULER = shutil.which("rqscheduler", path=str(Path(sys.executable).parent))
TASKKIT_QUEUE = "rq:queue:default"
FOREIGN_QUEUE = "rq:queue:foreign"
NOTE = "rqscheduler runs on this database"


def write_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "jobs.yaml"
    data = {
        "version": 1,
        "pythonpath": [str(APPS)],
        "redis": {"url": redis_url},
        "jobs": {"tick": {"func": "schedjobs:tick"}},
        # No worker runs here, so overlap: allow keeps every tick countable in the queue.
        "schedules": {"pulse": {"job": "tick", "every": "1s", "overlap": "allow"}},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def poll(condition: Callable[[], object], what: str, *alive: subprocess.Popen[bytes]) -> None:
    """Poll until ``condition`` holds; fail if a process in ``alive`` exits, or after 60 s."""
    deadline = time.monotonic() + 60
    while not condition():
        for process in alive:
            assert process.poll() is None, f"{process.args!r} exited waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def finish(process: subprocess.Popen[bytes]) -> str:
    """Stop ``process`` with SIGTERM and return its output (killed if it does not stop)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=20)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0].decode() + "\n(killed: did not stop on SIGTERM)"


@contextmanager
def started(command: list[str], outputs: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` for the block; its output goes to ``outputs`` and, for a failing
    test, to the captured stdout."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        output = outputs[Path(command[0]).name] = finish(process)
        print(f"--- output of {command}:\n{output}")


def taskkit_ticks(conn: redis.Redis) -> Counter[str]:
    """How often each tick of taskkit's schedule was enqueued (any job without a tick
    counts under "<no tick>": a template fired by someone else)."""
    ids = [raw.decode() for raw in conn.lrange(TASKKIT_QUEUE, 0, -1)]
    jobs = Job.fetch_many(ids, connection=conn, serializer="rq.serializers.JSONSerializer")
    return Counter(
        job.meta.get("taskkit_tick", "<no tick>") if job is not None else "<gone>" for job in jobs
    )


@pytest.mark.parametrize("job_class", [None, "rqschedapp.JSONJob"], ids=["pickle", "json"])
def test_rqscheduler_and_taskkit_schedulers_fire_only_their_own_entries(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis, job_class: str | None
) -> None:
    assert RQSCHEDULER is not None, "rq-scheduler installs the rqscheduler command"
    sys.path.insert(0, str(MIGRATE_APPS))
    try:
        import rqschedapp
    finally:
        sys.path.remove(str(MIGRATE_APPS))
    path = write_config(tmp_path, redis_url)
    # The team's own schedule, made with its job class through rq-scheduler's API.
    team = RqScheduler(connection=redis_conn, job_class=rqschedapp.JSONJob if job_class else None)
    team.schedule(
        datetime.now(UTC).replace(tzinfo=None), rqschedapp.foreign_tick, interval=1,
        queue_name="foreign", id="team-heartbeat",
    )  # fmt: skip
    rqscheduler = [RQSCHEDULER, "--url", redis_url, "-i", "1", "--path", str(MIGRATE_APPS)]
    rqscheduler += ["--job-class", job_class] if job_class else []
    taskkit_scheduler = [*TASKKIT, "run-scheduler", "-c", str(path), "--interval", "0.2"]
    entry = schedule_id("pulse")

    outputs: dict[str, str] = {}
    with started(rqscheduler, outputs) as theirs:
        first = subprocess.Popen(
            taskkit_scheduler, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            poll(lambda: redis_conn.llen(FOREIGN_QUEUE) >= 2, "2 foreign fires", theirs, first)
            poll(lambda: sum(taskkit_ticks(redis_conn).values()) >= 2, "2 ticks", theirs, first)
        finally:
            first_output = finish(first)
        assert NOTE in first_output, first_output

        # taskkit's scheduler is away (a deploy): its entry comes due, rqscheduler runs on.
        fired_while_running = taskkit_ticks(redis_conn)
        foreign = redis_conn.llen(FOREIGN_QUEUE)
        poll(
            lambda: (redis_conn.zscore(SCHEDULED_JOBS_KEY, entry) or 0) < time.time() - 1,
            "taskkit's entry to be overdue",
            theirs,
        )
        overdue_at = redis_conn.llen(FOREIGN_QUEUE)
        poll(lambda: redis_conn.llen(FOREIGN_QUEUE) >= overdue_at + 2, "2 more foreign", theirs)
        assert redis_conn.llen(FOREIGN_QUEUE) > foreign
        assert taskkit_ticks(redis_conn) == fired_while_running, "rqscheduler fired taskkit's"
        assert redis_conn.zscore(SCHEDULED_JOBS_KEY, entry) is not None

        status = CliRunner().invoke(cli, ["status", "-c", str(path)], catch_exceptions=False)
        assert NOTE in status.output, status.output

        # Back, twice over: each tick once, the foreign schedule still firing.
        restarted = len(fired_while_running)
        with started(taskkit_scheduler, outputs) as one, started(taskkit_scheduler, outputs) as two:
            poll(
                lambda: len(taskkit_ticks(redis_conn)) >= restarted + 3,
                "3 ticks after the restart",
                theirs, one, two,
            )  # fmt: skip
        foreign_after = redis_conn.llen(FOREIGN_QUEUE)
        poll(lambda: redis_conn.llen(FOREIGN_QUEUE) > foreign_after, "a foreign fire", theirs)
        # Checked while rqscheduler runs: its reschedule is a ZREM then a ZADD, so the
        # SIGTERM that ends it can land between the two and drop its own interval entry.
        poll(
            lambda: redis_conn.zscore(RQ_SCHEDULER_JOBS_KEY, "team-heartbeat") is not None,
            "rq-scheduler's own entry", theirs,
        )  # fmt: skip
        assert theirs.poll() is None, "rqscheduler died"
    their_output = outputs["rqscheduler"]

    ticks = taskkit_ticks(redis_conn)
    assert set(ticks.values()) == {1}, ticks  # no tick doubled, no template fired
    assert "<no tick>" not in ticks
    assert "Traceback" not in their_output, their_output
    # Neither removed the other's entry.
    assert redis_conn.zscore(SCHEDULED_JOBS_KEY, entry) is not None
    assert load(path, cached=False).config.schedules["pulse"].every == 1


def test_sync_and_status_say_what_rq_schedulers_entries_mean(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    path = write_config(tmp_path, redis_url)
    runner = CliRunner()
    quiet = runner.invoke(cli, ["schedules", "sync", "-c", str(path)], catch_exceptions=False)
    assert "note:" not in quiet.output

    RqScheduler(connection=redis_conn).schedule(
        datetime(2030, 1, 1), "rqschedapp.foreign_tick", interval=60, id="team-heartbeat"
    )
    synced = runner.invoke(cli, ["schedules", "sync", "-c", str(path)], catch_exceptions=False)
    assert "note: rq-scheduler's set holds 1 entry that taskkit does not fire" in synced.output

    # A live rqscheduler, as it announces itself (its hash expires unless it runs).
    redis_conn.hset("rq:scheduler_instance:abc", "birth", time.time())
    redis_conn.hset("rq:scheduler_instance:old", mapping={"birth": 1.0, "death": 2.0})
    synced = runner.invoke(cli, ["schedules", "sync", "-c", str(path)], catch_exceptions=False)
    assert f"note: rq-scheduler's {NOTE} (1 process): it fires its own 1 entry" in synced.output
    status = runner.invoke(cli, ["status", "--json", "-c", str(path)], catch_exceptions=False)
    assert '"rq_schedulers": [\n    "abc"\n  ]' in status.output
