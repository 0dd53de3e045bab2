"""rate_limit: at most ``limit`` starts per ``per`` window across worker processes; a job
over the limit is delayed, never failed, and the jobs behind it are not held up."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_support import FLOW_JOBS, events
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import PickleSerializer
from worker_support import WorkerCli, wait_for

from taskkit import Registry
from taskkit.limits import STARTED_AT_FIELD
from taskkit.testing import run_burst_worker


@pytest.fixture
def taskkit_config_path() -> Path:
    return FLOW_JOBS


def test_five_per_second_is_never_exceeded_by_three_workers(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection = taskkit_registry.connection
    jobs = [taskkit_registry.enqueue("call_api", n=n) for n in range(17)]
    workers = [worker_cli.start("run-worker", "-c", str(FLOW_JOBS)) for _ in range(3)]
    try:
        done = [JobStatus.FINISHED] * len(jobs)
        wait_for(lambda: [j.get_status() for j in jobs] == done, timeout=120, what="all jobs")
    finally:
        for worker in workers:
            worker_cli.stop(worker)

    # The instant (Redis's clock) the limiter counted each start, kept on the job.
    starts = sorted(float(connection.hget(job.key, STARTED_AT_FIELD) or 0) for job in jobs)
    assert all(starts), "every job was counted by the limiter"
    # 5 per second in any window: any 6 consecutive starts span at least a second.
    spans = [later - earlier for earlier, later in zip(starts, starts[5:], strict=False)]
    assert min(spans) >= 1.0 - 1e-6, spans
    assert len(events(connection, "call_api")) == len(jobs)  # each ran once, none failed
    assert len({event["pid"] for event in events(connection)}) > 1  # several workers ran them


def test_a_delayed_job_does_not_hold_up_the_jobs_behind_it(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection = taskkit_registry.connection
    # A window full for an hour: every call_api job is delayed, until the key is dropped.
    connection.zadd("taskkit:rate:stripe", {f"old:{i}": 4e9 for i in range(5)})
    delayed = taskkit_registry.enqueue("call_api", n=1)
    behind = taskkit_registry.enqueue("plain", account_id=40)
    worker = worker_cli.start("run-worker", "-c", str(FLOW_JOBS))
    try:
        wait_for(lambda: behind.get_status() == JobStatus.FINISHED, timeout=60, what="plain")
        wait_for(lambda: delayed.get_status() == JobStatus.SCHEDULED, timeout=60, what="delay")
        assert events(connection, "call_api") == []
        assert connection.zscore("taskkit:rate:stripe:waiting", delayed.id) is not None
        shown = worker_cli.run("status", "-c", str(FLOW_JOBS))
        rows = [line.split() for line in shown.stdout.splitlines() if "stripe" in line]
        assert rows == [["rate_limit", "stripe", "-", "-", "1"]], shown.stdout + shown.stderr
    finally:
        worker_cli.stop(worker)


def test_an_unreadable_entry_is_still_refused_with_its_reason(taskkit_registry: Registry) -> None:
    """The limiter reads a job's data before it runs; data it cannot read is left to the
    job class, which fails the entry with why, and the worker goes on."""
    connection = taskkit_registry.connection
    queue = Queue("default", connection=connection, serializer=PickleSerializer)
    pickled = queue.enqueue("flowjobs.call_api", 1)
    valid = taskkit_registry.enqueue("call_api", n=2)

    assert run_burst_worker(taskkit_registry).finished == 1

    assert valid.get_status() == JobStatus.FINISHED
    failed = Job.fetch(pickled.id, connection=connection, serializer=PickleSerializer)
    assert failed.get_status() == JobStatus.FAILED
    result = failed.latest_result()
    assert result is not None
    assert "cannot be decoded with JSONSerializer" in (result.exc_string or "")
