"""unique: a duplicate enqueue returns the job already waiting (or running), across
processes; the key is free once that job ends in any way, a SIGKILLed worker included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from flow_support import FLOW_JOBS, events
from rq.job import JobStatus
from worker_support import WorkerCli, wait_for

from taskkit import Registry
from taskkit.config import WorkerConfig
from taskkit.testing import run_burst_worker
from taskkit.uniqueness import redis_key
from taskkit.worker import recovery_bound


@pytest.fixture
def taskkit_config_path() -> Path:
    return FLOW_JOBS


def queued_ids(registry: Registry) -> list[str]:
    return registry.queue("default").get_job_ids()


def test_a_duplicate_returns_the_job_already_waiting(taskkit_registry: Registry) -> None:
    first = taskkit_registry.enqueue("sync_account", account_id=1)
    again = taskkit_registry.enqueue("sync_account", 1, hold=0.0)  # same key: {account_id}
    other = taskkit_registry.enqueue("sync_account", account_id=2)

    assert again.id == first.id
    assert other.id != first.id
    assert queued_ids(taskkit_registry) == [first.id, other.id]
    assert taskkit_registry.connection.get(redis_key("sync:1")) == first.id.encode()


def test_the_default_key_is_the_name_and_all_arguments(taskkit_registry: Registry) -> None:
    first = taskkit_registry.enqueue("sync_default_key", 1)
    same = taskkit_registry.enqueue("sync_default_key", account_id=1, hold=0.0)
    other = taskkit_registry.enqueue("sync_default_key", account_id=1, hold=0.5)
    assert same.id == first.id
    assert other.id != first.id


def test_a_scheduled_job_holds_its_key(taskkit_registry: Registry) -> None:
    from datetime import timedelta

    first = taskkit_registry.enqueue_in(timedelta(hours=1), "sync_account", account_id=3)
    again = taskkit_registry.enqueue("sync_account", account_id=3)
    assert again.id == first.id
    assert again.get_status() == JobStatus.SCHEDULED
    assert queued_ids(taskkit_registry) == []


@pytest.mark.parametrize("ending", ["finished", "failed", "canceled", "deleted", "expired"])
def test_the_key_is_free_once_the_job_ends_in_any_way(
    taskkit_registry: Registry, ending: str
) -> None:
    first = taskkit_registry.enqueue("sync_account", account_id=4)
    if ending == "finished":
        run_burst_worker(taskkit_registry)
        assert first.get_status() == JobStatus.FINISHED
    elif ending == "failed":
        first.set_status(JobStatus.FAILED)  # what any failure leaves, whatever caused it
    elif ending == "canceled":
        first.cancel()
    elif ending == "deleted":
        first.delete()
    else:  # its hash expired (RQ's ttl)
        taskkit_registry.connection.delete(first.key)

    second = taskkit_registry.enqueue("sync_account", account_id=4)

    assert second.id != first.id
    assert second.id in queued_ids(taskkit_registry)


_ENQUEUE_AT_ONCE = """
import sys, redis, taskkit
registry = taskkit.load(sys.argv[1])
client = redis.Redis.from_url(sys.argv[2])
client.blpop("flow:go", timeout=60)
print(registry.enqueue("sync_account", account_id=7).id)
"""


def test_enqueues_from_several_processes_at_the_same_instant_give_one_job(
    taskkit_registry: Registry, redis_url: str
) -> None:
    env = {**os.environ, "REDIS_URL": redis_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _ENQUEUE_AT_ONCE, str(FLOW_JOBS), redis_url],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    connection = taskkit_registry.connection
    # Each process loaded its registry and waits on flow:go: release them together.
    wait_for(lambda: connection.client_list().__len__() >= 5, timeout=60, what="4 waiting")
    connection.rpush("flow:go", *["go"] * 4)
    ids = [process.communicate(timeout=60)[0].strip() for process in processes]

    assert all(process.returncode == 0 for process in processes)
    assert len(set(ids)) == 1, ids
    assert queued_ids(taskkit_registry) == ids[:1]


def test_while_queued_a_running_job_no_longer_holds_its_key(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection = taskkit_registry.connection
    worker = worker_cli.start("run-worker", "-c", str(FLOW_JOBS))
    try:
        running = taskkit_registry.enqueue("sync_account", account_id=5, release_key="go:5")
        held = taskkit_registry.enqueue("sync_running", account_id=5, release_key="go:5")
        wait_for(lambda: len(events(connection, "sync_account")) >= 2, timeout=60, what="starts")

        assert taskkit_registry.enqueue("sync_account", account_id=5).id != running.id
        assert taskkit_registry.enqueue("sync_running", account_id=5).id == held.id
        connection.set("go:5", 1)
    finally:
        worker_cli.stop(worker)


def test_a_sigkilled_workers_key_is_free_within_the_recovery_bound(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection: redis.Redis = taskkit_registry.connection
    worker = worker_cli.start("run-worker", "-c", str(FLOW_JOBS))
    held = taskkit_registry.enqueue("sync_running", account_id=6, release_key="never")
    wait_for(lambda: events(connection, "sync_account"), timeout=60, what="the job's start")
    assert taskkit_registry.enqueue("sync_running", account_id=6).id == held.id

    worker.send_signal(signal.SIGKILL)  # its work horse dies with it
    worker.wait(timeout=30)

    settings = WorkerConfig(heartbeat_interval=1, heartbeat_grace=2, maintenance_interval=3)
    fresh: list[str] = []

    def freed() -> bool:
        job = taskkit_registry.enqueue("sync_running", account_id=6)
        if job.id != held.id:
            fresh.append(job.id)
        return bool(fresh)

    # No worker runs now: the key is freed by the job's own lease (its heartbeat).
    wait_for(freed, timeout=recovery_bound(settings), what="the key to be free")
    assert fresh[0] in queued_ids(taskkit_registry)


def test_enqueue_many_honours_unique(taskkit_registry: Registry) -> None:
    jobs = taskkit_registry.enqueue_many(
        [
            ("sync_account", (), {"account_id": 8}),
            ("sync_account", (9,), {}),
            ("sync_account", (8,), {}),
        ]
    )
    assert jobs[0].id == jobs[2].id
    assert queued_ids(taskkit_registry) == [jobs[0].id, jobs[1].id]
