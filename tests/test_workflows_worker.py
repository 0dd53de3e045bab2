"""Workflows worked by real ``taskkit run-worker`` processes (two fork workers).

A run's status is polled until it leaves ``running``, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Worker
from rq.registry import DeferredJobRegistry
from worker_support import WorkerCli, wait_for

from taskkit.registry import Registry

pytestmark = pytest.mark.slow

WORKFLOW_JOBS = Path(__file__).parent / "apps" / "workflowapps" / "jobs.yaml"


@pytest.fixture
def taskkit_config_path() -> Path:
    return WORKFLOW_JOBS


@pytest.fixture
def two_workers(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two fork workers, registered in Redis (so both take jobs) before the test starts."""
    workers = [worker_cli.start("run-worker", "-c", str(WORKFLOW_JOBS)) for _ in range(2)]
    conn = taskkit_registry.connection
    wait_for(lambda: len(Worker.all(connection=conn)) == 2, what="two workers registered")
    yield workers
    for worker in workers:
        assert worker_cli.stop(worker) == 0, worker_cli.stderr(worker)[-3000:]


def calls(registry: Registry) -> list[list[object]]:
    return [json.loads(c) for c in registry.connection.lrange("wf:calls", 0, -1)]


def test_fan_out_fan_in_notify_with_results_in_item_order(
    taskkit_registry: Registry, two_workers: list[subprocess.Popen[bytes]]
) -> None:
    shards = ["s3", "s0", "s4", "s1", "s2"]
    run = taskkit_registry.start_workflow("nightly_report", day="d1", shards=shards)
    wait_for(lambda: run.status() != "running", timeout=60, what="the run to end")

    assert run.status() == "finished"
    parts = [f"d1/{shard}" for shard in shards]
    assert run.results() == {"fetch": parts, "merge": "+".join(parts), "notify": "notified d1"}
    merged = [call for call in calls(taskkit_registry) if call[0] == "merge"]
    assert [call[1:3] for call in merged] == [["d1", parts]], "the fan-in ran once, in order"
    assert all(job.status == "finished" for view in run.steps() for job in view.jobs)


def test_a_failing_item_skips_the_fan_in_runs_on_failure_run_and_leaves_nothing_deferred(
    taskkit_registry: Registry, two_workers: list[subprocess.Popen[bytes]]
) -> None:
    run = taskkit_registry.start_workflow("nightly_report", day="d2", shards=["a", "bad", "c"])
    wait_for(lambda: run.status() != "running", timeout=60, what="the run to end")

    assert run.status() == "failed"
    states = {view.name: [job.status for job in view.jobs] for view in run.steps()}
    assert states == {
        "fetch": ["finished", "failed", "finished"],
        "merge": ["skipped"],
        "notify": ["finished"],
    }
    assert [call[0] for call in calls(taskkit_registry)].count("merge") == 0
    assert ["notify", "d2"] in [call[:2] for call in calls(taskkit_registry)]
    conn = taskkit_registry.connection
    for queue in ("default", "other"):
        assert DeferredJobRegistry(queue, connection=conn).get_job_ids() == []
    assert run.results()["fetch"] == ["d2/a", None, "d2/c"]
