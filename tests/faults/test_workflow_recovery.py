"""A workflow run outlives a worker SIGKILLed in the middle of it.

The killed worker's step job is recovered like any abandoned job (retried: the step
declares ``retry: {max: 1}``) and RQ moves the fan-in on once it ends.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fault_support import FAST_ARGS, FAST_BOUND, SLACK, descendants, kill
from rq import Worker
from worker_support import TESTS, WorkerCli, wait_for

from taskkit.registry import Registry

pytestmark = pytest.mark.slow

WORKFLOW_JOBS = TESTS / "apps" / "workflowapps" / "jobs.yaml"


@pytest.fixture
def taskkit_config_path() -> Path:
    return WORKFLOW_JOBS


def held(registry: Registry, tag: str) -> list[int]:
    return [int(pid) for pid in registry.connection.lrange(f"wf:held:{tag}", 0, -1)]


def test_a_sigkilled_worker_mid_run_and_the_run_still_finishes(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    args = ("run-worker", "-c", str(WORKFLOW_JOBS), *FAST_ARGS)
    workers = [worker_cli.start(*args) for _ in range(2)]
    conn = taskkit_registry.connection
    wait_for(lambda: len(Worker.all(connection=conn)) == 2, what="two workers registered")
    run = taskkit_registry.start_workflow("held", tags=["a", "b"])
    wait_for(lambda: held(taskkit_registry, "a") and held(taskkit_registry, "b"), what="both held")
    horse = held(taskkit_registry, "a")[0]
    victim = next(w for w in workers if horse in descendants(w.pid))

    kill([victim.pid, *descendants(victim.pid)])  # the worker, its horse, RQ's scheduler
    killed = time.monotonic()
    for tag in ("a", "b"):
        taskkit_registry.connection.set(f"wf:go:{tag}", 1)
    wait_for(lambda: run.status() != "running", timeout=FAST_BOUND + 30, what="the run to end")

    print(f"\nworker killed mid-run: run finished {time.monotonic() - killed:.1f}s later")
    assert run.status() == "finished"
    assert run.results() == {"wait": ["a", "b"], "total": 2}
    assert len(held(taskkit_registry, "a")) == 2, "item a ran again after its worker died"
    assert time.monotonic() - killed <= FAST_BOUND + SLACK + 10
    survivor = next(w for w in workers if w is not victim)
    assert worker_cli.stop(survivor) == 0
