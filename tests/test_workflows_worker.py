"""Workflows worked by real ``taskkit run-worker`` processes (two fork workers).

A run's status is polled until it leaves ``running``, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker
from rq.registry import DeferredJobRegistry
from worker_support import WorkerCli, wait_for

from taskkit.redis_server import EmbeddedRedis
from taskkit.registry import Registry, load

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


def test_a_fan_in_over_many_items_reads_one_sibling_per_item_not_all(
    embedded_redis: EmbeddedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private server: its command counts are this test's alone.
    monkeypatch.setenv("REDIS_URL", embedded_redis.url)
    registry = load(WORKFLOW_JOBS, cached=False)
    cli = WorkerCli(embedded_redis.url, tmp_path)
    try:
        workers = [
            cli.start("run-worker", "-c", str(WORKFLOW_JOBS), "--worker-class", "simple")
            for _ in range(2)
        ]
        conn = registry.connection
        wait_for(lambda: len(Worker.all(connection=conn)) == 2, what="two workers registered")
        before = hget_calls(conn)
        shards = [f"s{n}" for n in range(40)]
        run = registry.start_workflow("nightly_report", day="d3", shards=shards)
        wait_for(lambda: run.status() != "running", timeout=120, what="the run to end")
        hgets = hget_calls(conn) - before
        for worker in workers:
            assert cli.stop(worker) == 0, cli.stderr(worker)[-3000:]
    finally:
        cli.close()

    assert run.status() == "finished"
    parts = [f"d3/{shard}" for shard in shards]
    assert run.results()["merge"] == "+".join(parts), "the fan-in saw every item's result"
    assert [call[0] for call in calls(registry)].count("merge") == 1
    # RQ alone reads every sibling's status each time an item ends: 40 x 39 HGETs. A few
    # per item remain (the one sibling read, RQ's own, a WATCH retry when two ends race).
    assert hgets < 10 * len(shards), hgets
    assert not conn.keys("taskkit:workflow:pending:*"), "the pending set is emptied"


def hget_calls(conn: redis.Redis) -> int:
    stats = conn.info("commandstats").get("cmdstat_hget", {"calls": 0})
    return int(stats["calls"])
