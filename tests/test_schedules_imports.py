"""``taskkit schedules import [--remove] [--yes]`` over entries made with rq-scheduler's
own API (``cron``, ``schedule(interval=...)``, ``enqueue_at``), on a real Redis.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner
from rq_scheduler import Scheduler as RqScheduler

from taskkit.cli import cli
from taskkit.registry import load
from taskkit.schedules import RQ_SCHEDULER_JOBS_KEY, SCHEDULED_JOBS_KEY, schedule_id

MIGRATE_APPS = Path(__file__).parent / "apps" / "migrateapps"
TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]


@pytest.fixture
def rqschedapp() -> Iterator[Any]:
    sys.path.insert(0, str(MIGRATE_APPS))
    try:
        import rqschedapp

        yield rqschedapp
    finally:
        sys.path.remove(str(MIGRATE_APPS))


def write_config(tmp_path: Path, redis_url: str, extra: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "jobs.yaml"
    data = {"version": 1, "pythonpath": [str(MIGRATE_APPS)], "redis": {"url": redis_url}}
    path.write_text(yaml.safe_dump({**data, **(extra or {})}, sort_keys=False))
    return path


def invoke(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def fill(conn: redis.Redis, app: Any) -> None:
    """A team's rq-scheduler store: a cron with a repeat count and a timeout, an interval,
    a one-off, and a one-off whose argument JSON cannot hold."""
    team = RqScheduler(connection=conn)
    with warnings.catch_warnings():
        # rq-scheduler's cron() calls crontab's next() in a way crontab warns about.
        warnings.simplefilter("ignore", FutureWarning)
        team.cron(
            "0 3 * * *", app.send_report, args=["daily"], kwargs={"recipients": ["ops@example"]},
            queue_name="reports", timeout=300, repeat=5, id="nightly-report",
        )  # fmt: skip
    team.schedule(datetime(2030, 1, 1), "rqschedapp.foreign_tick", interval=90, kwargs={"n": 2})
    team.enqueue_at(datetime(2030, 6, 1, 12), app.send_report, "launch", queue_name="reports")
    team.enqueue_at(datetime(2030, 6, 1, 12), app.send_report, datetime(2030, 1, 1))


def test_import_prints_the_jobs_and_schedules_that_replace_rq_schedulers_entries(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis, rqschedapp: Any
) -> None:
    fill(redis_conn, rqschedapp)
    path = write_config(tmp_path, redis_url)
    result = invoke("schedules", "import", "-c", str(path))
    assert result.exit_code == 0, result.output
    text = result.output
    imported = yaml.safe_load(text)

    assert imported["queues"] == {"reports": {}, "default": {}}
    jobs = imported["jobs"]
    assert sorted(jobs.values(), key=str) == sorted(
        [
            {"func": "rqschedapp:send_report", "queue": "reports", "timeout": 300},
            {"func": "rqschedapp:foreign_tick", "queue": "default"},
            {"func": "rqschedapp:send_report", "queue": "reports"},
        ],
        key=str,
    )
    schedules = imported["schedules"]
    nightly = schedules.pop("nightly-report")  # the id rq-scheduler was given
    assert jobs[nightly["job"]]["timeout"] == 300
    assert nightly == {
        "job": nightly["job"],
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "args": ["daily"],
        "kwargs": {"recipients": ["ops@example"]},
    }
    assert schedules.pop("foreign_tick") == {
        "job": "foreign_tick", "every": 90, "kwargs": {"n": 2}
    }  # fmt: skip
    [(name, launch)] = schedules.items()  # named after its job: the id was generated
    assert name == launch["job"] != nightly["job"]
    assert launch == {
        "job": name, "at": "2030-06-01T12:00:00", "timezone": "UTC", "args": ["launch"]
    }  # fmt: skip
    assert "# NOTE: repeat: 5 runs left; taskkit schedules have no repeat count" in text
    assert "# NOTE: a one-off (enqueue_at/enqueue_in)" in text
    assert text.count("# NOT IMPORTED: entry") == 1
    assert "its arguments hold values JSON cannot" in text

    # The text is a valid jobs.yaml as it stands.
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **yaml.safe_load(text)}))
    registry = load(path, cached=False)
    assert set(registry.config.schedules) == {"nightly-report", "foreign_tick", name}
    assert registry.config.schedules["foreign_tick"].every == 90


def test_import_remove_deletes_only_entries_the_synced_file_holds_and_asks_first(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis, rqschedapp: Any
) -> None:
    fill(redis_conn, rqschedapp)
    path = write_config(tmp_path, redis_url)
    imported = yaml.safe_load(invoke("schedules", "import", "-c", str(path)).output)
    # The team keeps two of the three and renames one: matched by content, not by name.
    imported["schedules"]["heartbeat"] = imported["schedules"].pop("foreign_tick")
    [one_off] = [n for n, s in imported["schedules"].items() if "at" in s]
    del imported["schedules"][one_off]
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **imported}))
    before = redis_conn.zcard(RQ_SCHEDULER_JOBS_KEY)

    # Not synced yet: nothing is removed, and the error says what to do.
    refused = subprocess.run(
        [*TASKKIT, "schedules", "import", "--remove", "--yes", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: no rq-scheduler entry is in {path} and synced yet: add the imported "
        f"schedules to it and run `taskkit schedules sync -c {path}` first"
    ]
    assert redis_conn.zcard(RQ_SCHEDULER_JOBS_KEY) == before

    assert invoke("schedules", "sync", "-c", str(path)).exit_code == 0
    declined = invoke("schedules", "import", "--remove", "-c", str(path), input="n\n")
    assert "Delete these 2 rq-scheduler entries?" in declined.output
    assert declined.exit_code != 0
    assert redis_conn.zcard(RQ_SCHEDULER_JOBS_KEY) == before

    done = invoke("schedules", "import", "--remove", "--yes", "-c", str(path))
    assert done.exit_code == 0, done.output
    assert "imported as heartbeat: rq-scheduler entry" in done.output
    assert "imported as nightly-report: rq-scheduler entry nightly-report" in done.output
    assert "removed 2; left 2" in done.output
    assert redis_conn.zscore(RQ_SCHEDULER_JOBS_KEY, "nightly-report") is None
    assert not redis_conn.exists("rq:job:nightly-report")
    assert redis_conn.zcard(RQ_SCHEDULER_JOBS_KEY) == before - 2
    # taskkit's own schedules are where the sync put them.
    assert redis_conn.zscore(SCHEDULED_JOBS_KEY, schedule_id("heartbeat")) is not None


def test_import_never_runs_what_a_forged_pickle_names(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    marker = tmp_path / "pwned"

    class Forged:
        def __reduce__(self) -> tuple[Any, ...]:
            return (subprocess.call, (["touch", str(marker)],))

    data = pickle.dumps(("rqschedapp.foreign_tick", None, (Forged(),), {}))
    redis_conn.hset("rq:job:forged", mapping={"data": zlib.compress(data), "origin": "default"})
    redis_conn.zadd(RQ_SCHEDULER_JOBS_KEY, {"forged": 1.0})
    result = invoke("schedules", "import", "-c", str(write_config(tmp_path, redis_url)))
    assert result.exit_code == 0, result.output
    assert (
        "# NOT IMPORTED: entry forged: its job data cannot be read safely: it refers to "
        "subprocess.call, which is not a plain value type (unpickling it could run code)"
    ) in result.output
    assert not marker.exists()
