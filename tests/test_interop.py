"""Plain RQ underneath: ``rq info``, rq-dashboard and Sentry see taskkit's data; and the
operations commands under ``flask taskkit``."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from ops_support import cli_env, poll
from rq import Worker
from rq.serializers import JSONSerializer
from worker_support import REPO_ROOT, WorkerCli

from taskkit.registry import Registry, load
from taskkit.testing import run_burst_worker

pytestmark = pytest.mark.slow


def rq_command(*args: str) -> list[str]:
    """RQ's own command line, from this interpreter's environment."""
    return [sys.executable, "-m", "rq.cli", *args]


# -- rq info -------------------------------------------------------------------------------


def test_rq_info_shows_taskkit_queues_workers_and_jobs(
    ops: Registry, worker_cli: WorkerCli, redis_conn: redis.Redis, redis_url: str
) -> None:
    ops.enqueue("login", user="ann", password="pw")
    run_burst_worker(ops, queues=["high"])  # one failed job on high
    ops.enqueue("block_until", key="release")
    ops.enqueue("ping")  # waits behind the blocked one
    worker = worker_cli.start("run-worker", "-c", str(ops.path), "--burst", "--queues", "default")
    try:
        poll(lambda: redis_conn.exists("release:running"), what="the job to start")
        info = subprocess.run(
            rq_command("info", "-u", redis_url),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        redis_conn.set("release", 1)
    assert worker.wait(timeout=30) == 0, worker_cli.stderr(worker)

    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert any(re.fullmatch(r"high\s+\|\s*0, 0 executing, 0 finished, 1 failed", x) for x in lines)
    assert any(
        re.fullmatch(r"default\s+\|\S* 1, 1 executing, 0 finished, 0 failed", x) for x in lines
    ), info.stdout
    host = re.escape(socket.gethostname())
    assert re.search(rf"\({host} \S+ {worker.pid}\): busy default", info.stdout), info.stdout


# -- rq-dashboard --------------------------------------------------------------------------


@pytest.fixture
def dashboard(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    """rq-dashboard's Flask app on the test database, reading JSON jobs (``--json``)."""
    web = pytest.importorskip("rq_dashboard.web", reason="pip install rq-dashboard")
    from rq_dashboard.cli import make_flask_app

    monkeypatch.setattr(web.config, "serializer", JSONSerializer)  # as `rq-dashboard --json`
    app: Flask = make_flask_app(None, None, None, url_prefix="")
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    web.setup_rq_connection(app)
    with app.test_client() as client:
        yield client
    app.redis_conn.close()  # type: ignore[attr-defined]


def get_json(client: FlaskClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()


def test_rq_dashboard_shows_taskkit_queues_jobs_and_workers(
    ops: Registry, dashboard: FlaskClient, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    failed = ops.enqueue("login", user="ann", password="pw")
    done = ops.enqueue("ping")
    run_burst_worker(ops)
    waiting = [ops.enqueue("ping", value=i) for i in range(2)]

    queues = {q["name"]: q for q in get_json(dashboard, "/0/data/queues.json")["queues"]}
    listed = get_json(dashboard, "/0/data/jobs/default/queued/8/asc/1.json")["jobs"]
    detail = get_json(dashboard, f"/0/data/job/{failed.id}.json")
    finished = get_json(dashboard, f"/0/data/job/{done.id}.json")

    assert {"high", "default"} <= set(queues)
    assert queues["default"]["count"] == 2
    assert queues["default"]["finished_job_registry_count"] == 1
    assert queues["high"]["failed_job_registry_count"] == 1
    assert [job["id"] for job in listed] == [job.id for job in waiting]
    assert detail["status"] == "failed"
    assert detail["origin"] == "high"
    assert "PermissionError: login refused for ann" in detail["exc_info"]
    assert json.loads(detail["metadata"])["taskkit_job"] == "login"
    assert (finished["status"], finished["result"]) == ("finished", "pong")

    # An idle worker (rq-dashboard 0.9.0 fails on a busy one: see docs/operations.md).
    worker = worker_cli.start("run-worker", "-c", str(ops.path), "--queues", "high")
    try:
        poll(lambda: Worker.all(connection=redis_conn), what="the worker to register")
        (shown,) = get_json(dashboard, "/0/data/workers.json")["workers"]
    finally:
        worker_cli.stop(worker)
    assert (shown["pid"], shown["queues"], shown["state"]) == (worker.pid, ["high"], "idle")


def test_job_descriptions_that_rq_tools_show_hide_secret_arguments(
    ops: Registry, dashboard: FlaskClient
) -> None:
    job = ops.enqueue("login", "ann", "hunter22", api_key="k-123456")

    (listed,) = get_json(dashboard, "/0/data/jobs/high/queued/8/asc/1.json")["jobs"]

    assert listed["id"] == job.id
    assert "hunter22" not in listed["description"]
    assert "k-123456" not in listed["description"]


# -- Sentry --------------------------------------------------------------------------------

SENTRY_WORKER = """\
import json, sys
import sentry_sdk
from sentry_sdk.integrations.rq import RqIntegration
from sentry_sdk.transport import Transport

class FileTransport(Transport):
    # Writes events to a file instead of sending them (works in forked work horses too).
    def capture_envelope(self, envelope):
        with open(sys.argv[2], "a") as out:
            for item in envelope.items:
                if item.type == "event":
                    out.write(json.dumps(item.payload.json) + "\\n")

# What docs/deployment.md asks for, in the process that runs the worker (before it forks).
sentry_sdk.init(dsn="https://key@sentry.invalid/1", transport=FileTransport,
                integrations=[RqIntegration()])

from taskkit.cli import main
main(["run-worker", "--burst", "-c", sys.argv[1]])
"""


def test_sentry_rq_integration_reports_a_failed_taskkit_job_without_its_arguments(
    ops: Registry, tmp_path: Path
) -> None:
    pytest.importorskip("sentry_sdk", reason="pip install sentry-sdk")
    failing = ops.enqueue("login", user="ann", password="hunter22")
    ops.enqueue("ping")
    events = tmp_path / "events.jsonl"
    script = tmp_path / "sentry_worker.py"
    script.write_text(SENTRY_WORKER, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, str(script), str(ops.path), str(events)],
        env=cli_env(REDIS_URL=os.environ["REDIS_URL"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    (event,) = [json.loads(line) for line in events.read_text().splitlines()]
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "PermissionError"
    rq_job = event["extra"]["rq-job"]
    assert (rq_job["job_id"], rq_job["func"]) == (failing.id, "opsjobs.login")
    assert (rq_job["args"], rq_job["kwargs"]) == ("[Filtered]", "[Filtered]")  # no default PII


# -- flask taskkit ...  --------------------------------------------------------------------


def flask_taskkit(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``flask --app payments.app:create_app taskkit ARGS`` for the example app on ``url``."""
    env = cli_env(REDIS_URL=url, PYTHONPATH=str(REPO_ROOT / "examples"))
    flask = Path(sys.executable).with_name("flask")
    command = [str(flask)] if flask.exists() else [sys.executable, "-m", "flask"]
    return subprocess.run(
        [*command, "--app", "payments.app:create_app", "taskkit", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_and_failed_under_flask_taskkit(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    registry = load(REPO_ROOT / "jobs.yaml", cached=False)
    job = registry.enqueue("cleanup_sessions", older_than_days=-1)  # raises ValueError
    run_burst_worker(registry, queues=["default"])
    registry.enqueue("heartbeat")

    status = flask_taskkit("status", "--json", url=redis_url, cwd=tmp_path)  # app's jobs.yaml
    failed = flask_taskkit("failed", "list", url=redis_url, cwd=tmp_path)

    assert status.returncode == 0, status.stderr
    queues = {q["name"]: q for q in json.loads(status.stdout)["queues"]}
    assert list(queues) == ["critical", "default", "emails"]
    assert (queues["default"]["failed"], queues["default"]["queued"]) == (1, 1)
    assert {s["name"] for s in json.loads(status.stdout)["schedules"]} == {
        "nightly-cleanup",
        "heartbeat",
    }
    assert failed.returncode == 0, failed.stderr
    assert "FAILED (1)" in failed.stdout
    (row,) = [line for line in failed.stdout.splitlines() if job.id in line]
    assert "cleanup_sessions" in row
    assert "ValueError: older_than_days must be >= 0, got -1" in row


def test_flask_taskkit_errors_are_one_line(redis_url: str, tmp_path: Path) -> None:
    done = flask_taskkit("failed", "show", "no-such-id", url=redis_url, cwd=tmp_path)
    assert done.returncode == 1
    assert "no failed job 'no-such-id'" in done.stderr
    assert "Traceback" not in done.stderr
