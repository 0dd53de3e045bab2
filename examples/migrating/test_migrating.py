"""The migration guide's example (docs/migrating.md), end to end on a real Redis.

A job queued by the old hand-written RQ code (pickled, by import path) is converted
with ``taskkit legacy convert`` and run by a real taskkit worker in the app's context;
a job enqueued the new way runs beside it; the Flask-RQ2 / Flask-RQ cron became a
jobs.yaml schedule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from rq.job import Job

from migrating.before_plain_rq import enqueue_old_style
from taskkit.registry import load

HERE = Path(__file__).parent
TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]


def taskkit(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TASKKIT, *args, "-c", str(HERE / "jobs.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "REDIS_URL": redis_url},
    )  # fmt: skip


@pytest.mark.slow
def test_old_and_new_jobs_run_in_the_apps_context(
    taskkit_redis_url: str, taskkit_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", taskkit_redis_url)
    old_id = enqueue_old_style(taskkit_redis)
    registry = load(HERE / "jobs.yaml", cached=False)
    new = registry.enqueue("send_report", kind="daily", recipients=["team@example.com"])

    converted = taskkit("legacy", "convert", redis_url=taskkit_redis_url)
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.splitlines()[-1] == "1 converted, 0 left"
    worker = taskkit(
        "run-worker", "--burst", "--worker-class", "simple", redis_url=taskkit_redis_url
    )
    assert worker.returncode == 0, worker.stderr

    results = {
        job_id: Job.fetch(job_id, connection=taskkit_redis, serializer=registry.serializer)
        for job_id in (old_id, new.id)
    }
    assert results[old_id].return_value() == (
        "weekly report from reports@example.com to ops@example.com"
    )
    assert results[new.id].return_value() == (
        "daily report from reports@example.com to team@example.com"
    )


def test_the_cron_of_flask_rq2_and_flask_rq_is_a_schedule() -> None:
    nightly = load(HERE / "jobs.yaml", cached=False).config.schedules["nightly-report"]
    assert (nightly.cron, nightly.timezone) == ("0 3 * * *", "Europe/Berlin")
    assert nightly.kwargs == {"kind": "nightly", "recipients": ["ops@example.com"]}
