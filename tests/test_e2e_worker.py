"""End to end: the payments example, a real Redis and a real ``taskkit run-worker --burst``.

Half the receipt jobs are enqueued through the Python API and half through the
example's view (TaskKit, not eager); each job reads the database, builds an external
URL and renders a template. Forged entries (JSON and pickle) ride along and must fail
without running anything. ``rq info`` must see plain RQ data throughout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer
from sqlalchemy import select, update
from worker_support import REPO_ROOT, WorkerCli

from taskkit import Registry
from taskkit.testing import use_redis

pytestmark = pytest.mark.slow

JOBS_YAML = REPO_ROOT / "jobs.yaml"
RECEIPTS = 20


@pytest.fixture
def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The payments app on the same database file as the worker, enqueueing to the test Redis."""
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    from payments.app import create_app

    app = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=os.environ["PAYMENTS_DATABASE_URL"],
        TASKKIT_CONFIG=str(JOBS_YAML),
    )
    with use_redis(app.extensions["taskkit"].registry, redis_url):
        yield app
    sys.path.remove(str(REPO_ROOT / "examples"))


def rq_info(redis_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "info", "--url", redis_url, "--only-queues"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def queue_line(info: str, name: str) -> str:
    (line,) = [line for line in info.splitlines() if line.startswith(f"{name} ")]
    return line


def enqueue_receipts(app: Flask, registry: Registry) -> list[Job]:
    """Half through registry.enqueue, half through POST /payments/<id>/complete."""
    from payments.db import db
    from payments.models import COMPLETED, Payment
    from payments.seed import seed

    pairs = seed(app, users=4, payments=RECEIPTS // 4).pairs
    through_api, through_view = pairs[: RECEIPTS // 2], pairs[RECEIPTS // 2 :]
    with app.app_context():
        ids = [payment_id for _, payment_id in through_api]
        db.session.execute(update(Payment).where(Payment.id.in_(ids)).values(status=COMPLETED))
        db.session.commit()
    jobs = [
        registry.enqueue("send_payment_receipt", user_id=user_id, payment_id=payment_id)
        for user_id, payment_id in through_api
    ]
    client = app.test_client()
    for _, payment_id in through_view:
        response = client.post(f"/payments/{payment_id}/complete")
        assert response.status_code == 202, response.text
        jobs.append(Job(response.json["job_id"], connection=registry.connection))
    return jobs


def forge_entries(registry: Registry, tmp_path: Path) -> tuple[list[Job], list[Path]]:
    markers: list[Path] = []
    forged: list[Job] = []
    for serializer in (JSONSerializer, PickleSerializer):
        queue = Queue("default", connection=registry.connection, serializer=serializer)
        name = serializer.__name__
        markers += [tmp_path / f"eval-{name}", tmp_path / f"system-{name}"]
        forged.append(
            queue.enqueue(
                "builtins.eval", f"__import__('pathlib').Path({str(markers[-2])!r}).touch()"
            )
        )
        forged.append(queue.enqueue("os.system", f"touch {markers[-1]}"))
    return forged, markers


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_receipts_end_to_end(
    app: Flask, worker_cli: WorkerCli, redis_url: str, tmp_path: Path, worker_class: str
) -> None:
    registry = app.extensions["taskkit"].registry
    receipts = enqueue_receipts(app, registry)
    forged, markers = forge_entries(registry, tmp_path)

    before = rq_info(redis_url)
    assert re.search(
        rf"\b{RECEIPTS}, 0 executing, 0 finished, 0 failed", queue_line(before, "emails")
    )
    assert re.search(r"\b4, 0 executing, 0 finished, 0 failed", queue_line(before, "default"))

    done = worker_cli.run(
        "run-worker", "-c", str(JOBS_YAML), "--burst", "--worker-class", worker_class
    )
    assert done.returncode == 0, done.stderr

    check_receipts(app, registry, receipts)
    check_worker_process(worker_cli, done.stderr, worker_class)
    check_forged(registry, forged, markers)
    after = rq_info(redis_url)
    assert re.search(
        rf"\b0, 0 executing, {RECEIPTS} finished, 0 failed", queue_line(after, "emails")
    )
    assert re.search(r"\b0, 0 executing, 0 finished, 4 failed", queue_line(after, "default"))


def check_receipts(app: Flask, registry: Registry, jobs: list[Job]) -> None:
    from payments.db import db
    from payments.models import Receipt

    for job in jobs:
        fetched = Job.fetch(job.id, connection=registry.connection, serializer=JSONSerializer)
        assert fetched.get_status() == JobStatus.FINISHED, fetched.latest_result()
    with app.app_context():
        receipts = db.session.scalars(select(Receipt).order_by(Receipt.payment_id)).all()
    assert len(receipts) == RECEIPTS
    for receipt in receipts:
        url = f"http://payments.example.com/receipts/{receipt.payment_id}"
        assert receipt.url == url
        assert f"Your receipt is online at {url}" in receipt.body  # the rendered template
        assert receipt.body.startswith("Hello User ")


def check_worker_process(worker_cli: WorkerCli, stderr: str, worker_class: str) -> None:
    me = os.getpid()
    (worker_pid,) = [pid for pid in worker_cli.factory_pids() if pid != me]  # built once
    torn_down = [(pid, outcome) for pid, outcome in worker_cli.teardowns() if pid != me]
    assert [outcome for _, outcome in torn_down] == ["ok"] * RECEIPTS  # once per job
    pids = [pid for pid, _ in torn_down]
    if worker_class == "simple":
        assert set(pids) == {worker_pid}
    else:
        assert len(set(pids)) == RECEIPTS and worker_pid not in pids  # one horse per job
    lines = re.findall(r"send_payment_receipt queue=emails id=\S+ [\d.]+ms ok", stderr)
    assert len(lines) == RECEIPTS


def check_forged(registry: Registry, forged: list[Job], markers: list[Path]) -> None:
    failed = FailedJobRegistry("default", connection=registry.connection)
    assert set(failed.get_job_ids()) == {job.id for job in forged}
    assert not any(marker.exists() for marker in markers), "a forged entry ran"
    texts: list[Any] = []
    for job in forged:
        result = Job.fetch(job.id, connection=registry.connection).latest_result()
        assert result is not None
        texts.append(result.exc_string)
    assert sum("UndeclaredJobError" in text for text in texts) == 2  # the JSON ones
    assert sum("cannot be decoded with JSONSerializer" in text for text in texts) == 2  # pickle
