"""concurrency: at most ``limit`` jobs with a key run at once across worker processes; the
others wait (not failed, not in their queue's way), and a SIGKILLed worker's slot comes
back within the recovery bound."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import redis
from flow_support import FLOW_JOBS, events
from rq.job import JobStatus
from worker_support import WorkerCli, wait_for

from taskkit import Registry
from taskkit.config import WorkerConfig
from taskkit.errors import ConfigError
from taskkit.registry import load
from taskkit.worker import recovery_bound


@pytest.fixture
def taskkit_config_path() -> Path:
    return FLOW_JOBS


def intervals(connection: redis.Redis, account_id: int) -> list[tuple[float, float]]:
    """(start, end) of each run of sync_account(account_id), on the Redis server's clock."""
    starts: dict[int, list[float]] = {}
    found: list[tuple[float, float]] = []
    for event in events(connection, "sync_account"):
        if event["account_id"] != account_id:
            continue
        if event["edge"] == "start":
            starts.setdefault(event["pid"], []).append(event["redis_time"])
        else:
            found.append((starts[event["pid"]].pop(0), event["redis_time"]))
    return found


def most_at_once(runs: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def statuses(jobs: list[Any]) -> list[str]:
    return [job.get_status() for job in jobs]


def test_a_limit_of_one_is_never_exceeded_by_three_workers(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection = taskkit_registry.connection
    jobs = [taskkit_registry.enqueue("limited", account_id=1, hold=0.1) for _ in range(8)]
    others = [taskkit_registry.enqueue("limited", account_id=2, hold=0.1) for _ in range(2)]
    workers = [worker_cli.start("run-worker", "-c", str(FLOW_JOBS)) for _ in range(3)]
    try:
        done = [JobStatus.FINISHED] * 10
        wait_for(lambda: statuses(jobs + others) == done, timeout=120, what="all jobs to end")
    finally:
        for worker in workers:
            worker_cli.stop(worker)

    runs = intervals(connection, 1)
    assert len(runs) == 8
    assert most_at_once(runs) == 1
    assert len({event["pid"] for event in events(connection)}) > 1  # several workers ran them


def test_a_waiting_job_does_not_block_the_jobs_behind_it(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection = taskkit_registry.connection
    holder = taskkit_registry.enqueue("limited", account_id=3, release_key="go:3")
    waiting = taskkit_registry.enqueue("limited", account_id=3)
    behind = taskkit_registry.enqueue("plain", account_id=30)
    assert waiting.get_status() == JobStatus.RATE_LIMITED
    workers = [worker_cli.start("run-worker", "-c", str(FLOW_JOBS)) for _ in range(2)]
    try:  # one worker holds the slot; the other runs the job behind the waiting one
        wait_for(lambda: behind.get_status() == JobStatus.FINISHED, timeout=60, what="plain")
        assert holder.get_status() == JobStatus.STARTED
        assert waiting.get_status() == JobStatus.RATE_LIMITED  # waits, not failed
        connection.set("go:3", 1)
        wait_for(lambda: waiting.get_status() == JobStatus.FINISHED, timeout=60, what="waiting")
    finally:
        for worker in workers:
            worker_cli.stop(worker)


def test_a_unique_job_over_the_limit_waits_and_keeps_its_key(taskkit_registry: Registry) -> None:
    first = taskkit_registry.enqueue("limited", account_id=4, release_key="never")
    held = taskkit_registry.enqueue("limited_unique", account_id=4)
    again = taskkit_registry.enqueue("limited_unique", account_id=4)

    assert held.get_status() == JobStatus.RATE_LIMITED
    assert again.id == held.id
    assert taskkit_registry.queue("default").get_job_ids() == [first.id]


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


def test_a_sigkilled_workers_slot_is_freed_within_the_recovery_bound(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    connection = taskkit_registry.connection
    workers = [worker_cli.start("run-worker", "-c", str(FLOW_JOBS)) for _ in range(3)]
    try:
        taskkit_registry.enqueue("limited", account_id=5, release_key="never")
        waiting = taskkit_registry.enqueue("limited", account_id=5)
        wait_for(lambda: intervals_started(connection, 5) == 1, timeout=60, what="first start")
        horse = events(connection, "sync_account")[0]["pid"]
        holder = next(w for w in workers if w.pid == parent_of(horse))
        assert waiting.get_status() == JobStatus.RATE_LIMITED

        holder.send_signal(signal.SIGKILL)  # its work horse dies with it
        holder.wait(timeout=30)
        settings = WorkerConfig(heartbeat_interval=1, heartbeat_grace=2, maintenance_interval=3)
        wait_for(
            lambda: intervals_started(connection, 5) == 2,
            timeout=recovery_bound(settings),
            what="the waiting job to start in the freed slot",
        )
        connection.set("never", 1)
        wait_for(lambda: waiting.get_status() == JobStatus.FINISHED, timeout=60, what="its end")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker_cli.stop(worker)


def intervals_started(connection: redis.Redis, account_id: int) -> int:
    return sum(
        1
        for event in events(connection, "sync_account")
        if event["account_id"] == account_id and event["edge"] == "start"
    )


@pytest.mark.parametrize(
    "sender",
    [
        "schedules:\n  s:\n    job: j\n    every: 1m\n",
        "workflows:\n  w:\n    steps:\n      a: {job: j}\n",
    ],
)
def test_schedules_and_workflows_of_a_limited_job_are_refused(tmp_path: Path, sender: str) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "version: 1\n"
        f"pythonpath: [{FLOW_JOBS.parent}]\n"
        "jobs:\n"
        "  j:\n"
        "    func: flowjobs:call_api\n"
        "    concurrency: {limit: 1}\n" + sender
    )
    with pytest.raises(ConfigError) as raised:
        load(path, cached=False)
    assert "job 'j' has concurrency:, which" in str(raised.value)
    assert f"{path}:" in str(raised.value)


def test_status_shows_the_jobs_waiting_on_a_limit(
    taskkit_registry: Registry, worker_cli: WorkerCli
) -> None:
    taskkit_registry.enqueue("limited", account_id=7)
    taskkit_registry.enqueue("limited", account_id=7)
    taskkit_registry.enqueue("limited", account_id=7)

    shown = worker_cli.run("status", "-c", str(FLOW_JOBS))

    assert shown.returncode == 0, shown.stderr
    assert "LIMITS (jobs waiting on a limit)" in shown.stdout
    row = next(line.split() for line in shown.stdout.splitlines() if "acct:7" in line)
    assert row == ["concurrency", "acct:7", "1", "1", "2"]


def test_list_shows_each_jobs_flow_keys(worker_cli: WorkerCli) -> None:
    shown = worker_cli.run("list", "-c", str(FLOW_JOBS))
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines() if line.strip()}
    assert (
        "unique lu:{account_id} while queued; concurrency acct:{account_id} <= 1"
        in (lines["limited_unique"])
    )
    assert "rate_limit stripe 5 per 1s" in lines["call_api"]
    assert "enqueue after_commit" in lines["mail_after_commit"]
    assert " - " in lines["plain"]
