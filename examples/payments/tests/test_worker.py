"""The same flow through a real Redis and a real RQ worker (taskkit's pytest plugin).

``taskkit_registry`` is the app's own registry pointed at a Redis database of the
test's own; ``taskkit_worker`` runs a burst worker in this process. Given the test's
app, the worker runs the jobs against the test database, as a deployed worker would
run them against the real one.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from rq.job import JobStatus

from payments.seed import seed
from taskkit import Registry
from taskkit.testing import WorkerRun


def test_a_receipt_goes_through_redis_and_a_worker(
    app: Flask, taskkit_registry: Registry, taskkit_worker: Callable[..., WorkerRun]
) -> None:
    app.extensions["taskkit"].eager = False  # this test wants the real thing
    (_, payment_id) = seed(app).pairs[0]
    client = app.test_client()

    job_id = client.post(f"/payments/{payment_id}/complete").json["job_id"]  # type: ignore[index]
    assert client.get(f"/receipts/{payment_id}").status_code == 404  # not sent yet
    job = taskkit_registry.queue("emails").fetch_job(job_id)
    assert job is not None and job.get_status() == JobStatus.QUEUED

    run = taskkit_worker(queues=["emails"], app=app)

    assert (run.finished, run.failed) == (1, 0)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == f"http://payments.example.com/receipts/{payment_id}"
    assert client.get(f"/receipts/{payment_id}").status_code == 200
