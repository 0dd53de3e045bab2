"""Eager mode: jobs run at once in the test's own app context, with no Redis at all.

This is the scenario from reference/rq-worker-flask-context.md done right: a fixture
pushes an app context bound to a test database; enqueueing in eager mode runs the job
in that context, against that database, without building a second app.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq.job import JobStatus
from sqlalchemy import select
from worker_support import PROBE_JOBS, REPO_ROOT

from taskkit import JobArgumentsError, Registry, UnknownJobError, load
from taskkit.eager import EagerJob
from taskkit.testing import eager, run_burst_worker, use_redis

TOP_LEVEL_JOBS = REPO_ROOT / "jobs.yaml"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://:pw@127.0.0.1:{port}/0"


@pytest.fixture
def payments() -> Iterator[Any]:
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    import payments.app

    yield payments
    sys.path.remove(str(REPO_ROOT / "examples"))


@pytest.fixture
def production_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the production config would put its database: it must never appear."""
    path = tmp_path / "production.sqlite"
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", f"sqlite:///{path}")
    return path


@pytest.fixture
def app(payments: Any, tmp_path: Path, production_db: Path) -> Iterator[Flask]:
    """The payments app on a test database, in eager mode, with Redis unreachable."""
    app = payments.app.create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test.sqlite'}",
        TASKKIT_CONFIG=str(TOP_LEVEL_JOBS),
        TASKKIT_EAGER=True,
    )
    with use_redis(app.extensions["taskkit"].registry, closed_port_url()):
        yield app


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def test_the_job_runs_in_the_tests_context_against_the_test_database(
    app: Flask, app_ctx: None, payments: Any, production_db: Path
) -> None:
    from payments.db import db
    from payments.models import COMPLETED, Receipt
    from payments.seed import seed

    seeded = seed(app, users=1, payments=1, status=COMPLETED)
    (user_id, payment_id) = seeded.pairs[0]
    calls_before = payments.app.FACTORY_CALLS

    job = app.extensions["taskkit"].enqueue(
        "send_payment_receipt", user_id=user_id, payment_id=payment_id
    )

    assert isinstance(job, EagerJob)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == f"http://payments.example.com/receipts/{payment_id}"
    receipt = db.session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
    assert receipt is not None and "User 1" in receipt.body
    assert calls_before == payments.app.FACTORY_CALLS, "no second app was built"
    assert not production_db.exists(), "the production database was touched"
    assert (job.origin, job.timeout, job.retries_left) == ("emails", 30, 3)


def test_the_view_enqueues_and_the_receipt_exists_at_once(
    app: Flask, payments: Any, production_db: Path
) -> None:
    from payments.seed import seed

    (_, payment_id) = seed(app).pairs[0]
    client = app.test_client()
    response = client.post(f"/payments/{payment_id}/complete")
    assert response.status_code == 202
    receipt = client.get(f"/receipts/{payment_id}")
    assert receipt.status_code == 200
    assert f"http://payments.example.com/receipts/{payment_id}" in receipt.text
    assert not production_db.exists()


@pytest.mark.parametrize(
    ("call", "error", "expected"),
    [
        (("send_payment_receipt", {"user_id": 1}), JobArgumentsError, r"'payment_id'"),
        (
            ("send_payment_receipt", {"user_id": 1, "payment_id": {1}}),
            JobArgumentsError,
            r"\(set\)",
        ),
        (("send_payment_reciept", {}), UnknownJobError, "did you mean"),
    ],
)
def test_eager_checks_arguments_as_a_real_enqueue_does(
    app: Flask, app_ctx: None, call: tuple[str, dict[str, Any]], error: type, expected: str
) -> None:
    name, kwargs = call
    with pytest.raises(error, match=expected):
        app.extensions["taskkit"].enqueue(name, **kwargs)


def test_the_jobs_exception_reaches_the_caller(app: Flask, app_ctx: None) -> None:
    with pytest.raises(RuntimeError, match="card declined"):
        app.extensions["taskkit"].enqueue("fail_always", reason="card declined")


def test_arguments_make_a_json_round_trip(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", closed_port_url())
    registry = load(PROBE_JOBS, cached=False)
    with eager(registry):
        job = registry.enqueue("echo", (1, 2), {3: "x"}, when=("a",))
    seen = job.return_value()
    assert seen["args"] == ["[1, 2]", "{'3': 'x'}"], "a tuple arrives as a list, keys as strings"
    assert seen["kwargs"] == {"when": "['a']"}
    assert registry.eager is False, "eager(registry) puts the setting back"


def test_taskkit_eager_in_the_environment_needs_no_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", closed_port_url())
    registry = load(PROBE_JOBS, cached=False)
    monkeypatch.setenv("TASKKIT_EAGER", "1")
    job = registry.enqueue("report_none")
    assert job.return_value()["app_context"] is False
    many = registry.enqueue_many([("echo", (1,), {}), ("echo", (2,), {})])
    assert [j.return_value()["args"] for j in many] == [["1"], ["2"]]


def test_eager_without_a_registry_sets_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", closed_port_url())
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    registry = load(PROBE_JOBS, cached=False)
    with eager():
        assert registry.enqueue("echo", 1).get_status() == JobStatus.FINISHED
    assert registry.eager is False


def test_a_burst_worker_in_a_test_uses_the_tests_app(
    app: Flask, taskkit_registry: Registry, production_db: Path
) -> None:
    """run_burst_worker adopts the active app, so a real worker uses the test database."""
    with app.app_context():
        job = taskkit_registry.enqueue("report_app")
        run = run_burst_worker(taskkit_registry)
    assert run.finished == 1
    assert job.return_value()["testing"] is True
    assert taskkit_registry.process_app.built is None, "the adopted app is let go afterwards"
    assert not production_db.exists()


@pytest.mark.parametrize("in_app_context", [True, False], ids=["test-context", "own-context"])
@pytest.mark.parametrize("name", ["async_app", "async_request"])
def test_an_async_job_runs_to_the_end_in_eager_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, payments: Any, name: str, in_app_context: bool
) -> None:
    """Eager mode returned an un-awaited coroutine."""
    monkeypatch.setenv("REDIS_URL", closed_port_url())
    registry = load(PROBE_JOBS, cached=False)
    app = payments.app.create_app(
        "testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test.sqlite'}"
    )
    with eager(registry):
        if in_app_context:
            with app.app_context():
                job = registry.enqueue(name, wait=0.01)
        else:
            job = registry.enqueue(name)
    report = job.return_value()
    assert job.get_status() == JobStatus.FINISHED
    assert report["query"] == 42
    assert report["app_name"] == "payments.app"
    assert report["request_context"] is (name == "async_request")


def test_an_async_job_runs_in_eager_mode_from_async_code(
    monkeypatch: pytest.MonkeyPatch, payments: Any
) -> None:
    """Under a running event loop (an async test or view), the job gets a loop of its own."""
    import asyncio

    monkeypatch.setenv("REDIS_URL", closed_port_url())
    registry = load(PROBE_JOBS, cached=False)

    async def enqueue_from_async_code() -> Any:
        with eager(registry):
            return registry.enqueue("async_app").return_value()

    assert asyncio.run(enqueue_from_async_code())["query"] == 42


def test_a_teardown_error_in_eager_mode_leaves_the_job_finished(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_URL", closed_port_url())
    registry = load(PROBE_JOBS, cached=False)
    with eager(registry):
        job = registry.enqueue("teardown_breaks", marker=str(tmp_path / "runs"))
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == "done"
    (line,) = [
        r.getMessage() for r in caplog.records if "teardown handler raised" in r.getMessage()
    ]
    assert f"teardown_breaks id={job.id}" in line
