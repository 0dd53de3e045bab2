"""Workers and work horses that die: their jobs are retried or failed, never lost or doubled.

Each test runs real ``taskkit run-worker`` processes with small recovery settings
(``FAST``: heartbeat every 1 s, 2 s grace, maintenance every 2 s) and kills them with
real signals. The recovery times they measure are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fault_support import (
    CONFIG,
    FAST,
    FAST_ARGS,
    FAST_BOUND,
    SLACK,
    descendants,
    failure_text,
    fetch,
    kill,
    pid_alive,
    records,
    status,
    wait_for_status,
)
from rq import SimpleWorker, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from worker_support import WorkerCli, wait_for

from taskkit import Registry
from taskkit.testing import run_burst_worker
from taskkit.worker import wake_interval

pytestmark = pytest.mark.slow

OUTCOMES = [("attempt_retried", JobStatus.FINISHED), ("attempt", JobStatus.FAILED)]


def first_run(registry: Registry, tag: str) -> dict[str, float]:
    wait_for(lambda: records(registry, tag), what=f"job {tag} to start")
    return records(registry, tag)[0]


def started_beside(
    worker_cli: WorkerCli, registry: Registry, args: tuple[str, ...], *more: str
) -> subprocess.Popen[bytes]:
    """Start a rescuing worker and wait until it listens, so that what a test times after
    a kill is the recovery, not how long a process takes to start on a busy machine."""
    before = Worker.count(connection=registry.connection)
    rescuer = worker_cli.start(*args, *more)
    wait_for(
        lambda: Worker.count(connection=registry.connection) > before,
        what="the rescuing worker to listen",
    )
    return rescuer


def check_recovered(registry: Registry, tag: str, outcome: JobStatus, job_id: str) -> None:
    """A retried job ran again to its end; a failed one says it was abandoned."""
    job = fetch(registry, job_id)
    if outcome == JobStatus.FINISHED:
        assert job.return_value() == 2, "the second attempt finished"
        runs, ends = records(registry, tag), records(registry, tag, "ends")
        assert [end["pid"] for end in ends] == [runs[1]["pid"]], "the first run never ended"
    else:
        assert "AbandonedJobError" in failure_text(registry, job)
    assert registry.connection.zcard("rq:wip:default") == 0, "nothing left 'started'"


# -- the whole worker dies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("worker_class", "job_name", "outcome"),
    [("fork", *OUTCOMES[0]), ("fork", *OUTCOMES[1]), ("spawn", *OUTCOMES[0])],
)
def test_the_job_of_a_killed_worker_is_recovered_within_the_bound(
    worker_cli: WorkerCli,
    taskkit_registry: Registry,
    worker_class: str,
    job_name: str,
    outcome: JobStatus,
) -> None:
    job = taskkit_registry.enqueue(job_name, "k", first=60)
    args = ("run-worker", "-c", CONFIG, *FAST_ARGS)
    victim = worker_cli.start(*args, "--worker-class", worker_class)
    run = first_run(taskkit_registry, "k")
    assert run["ppid"] == victim.pid, "the job runs in a work horse"

    rescuer = started_beside(worker_cli, taskkit_registry, args, "--worker-class", "simple")

    kill([victim.pid, *descendants(victim.pid)])  # the worker, its horse, RQ's scheduler
    killed = time.monotonic()
    wait_for_status(taskkit_registry, job, [outcome], timeout=FAST_BOUND + 30)
    took = time.monotonic() - killed

    print(f"\n{worker_class} worker killed: job {outcome.value} {took:.1f}s later")
    assert took <= FAST_BOUND + SLACK
    check_recovered(taskkit_registry, "k", outcome, job.id)
    assert worker_cli.stop(rescuer) == 0


def test_the_jobs_of_a_killed_worker_pool_are_recovered_within_the_bound(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    jobs = [taskkit_registry.enqueue("attempt_retried", f"p{n}", first=60) for n in range(2)]
    args = ("run-worker", "-c", CONFIG, *FAST_ARGS)
    victim = worker_cli.start(*args, "--processes", "2")
    runs = [first_run(taskkit_registry, f"p{n}") for n in range(2)]
    assert runs[0]["ppid"] != runs[1]["ppid"], "one job in each pool worker"

    rescuer = started_beside(worker_cli, taskkit_registry, args)

    kill([victim.pid, *descendants(victim.pid)])
    killed = time.monotonic()
    for job in jobs:
        wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=FAST_BOUND + 30)
    took = time.monotonic() - killed

    print(f"\npool killed: both jobs retried and finished {took:.1f}s later (bound {FAST_BOUND}s)")
    assert took <= FAST_BOUND + SLACK
    for n, job in enumerate(jobs):
        check_recovered(taskkit_registry, f"p{n}", JobStatus.FINISHED, job.id)
    assert worker_cli.stop(rescuer) == 0


def test_the_workers_of_a_killed_pool_end_their_job_and_stop(
    worker_cli: WorkerCli, taskkit_registry: Registry, tmp_path: Path
) -> None:
    """RQ's pool workers outlived a SIGKILLed pool, so its restart ran twice the workers."""
    release = tmp_path / "release"
    job = taskkit_registry.enqueue("hold_retried", "k", str(release))
    pool = worker_cli.start("run-worker", "-c", CONFIG, *FAST_ARGS, "--processes", "2")
    conn = taskkit_registry.connection
    first_run(taskkit_registry, "k")
    wait_for(lambda: Worker.count(connection=conn) == 2, what="both pool workers")
    below = descendants(pool.pid)

    kill([pool.pid])  # the pool alone: its workers see it gone
    pool.wait(timeout=10)
    try:
        wait_for(lambda: Worker.count(connection=conn) == 1, what="the idle worker to stop")
        release.touch()  # the busy one ends its job first
        wait_for(
            lambda: not any(pid_alive(pid) for pid in below),
            what="the pool's workers (and their processes) to stop",
        )
    finally:
        kill(below)  # never leave a worker behind on a database another test takes
    wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=5)
    assert len(records(taskkit_registry, "k")) == 1, "the job ran once, to its end"
    assert Worker.count(connection=conn) == 0, "each worker deregistered as it stopped"


def test_the_job_of_a_killed_simple_worker_is_recovered_after_its_timeout(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    """A simple worker renews no heartbeat during a job: its timeout (3 s) counts too."""
    job = taskkit_registry.enqueue("attempt_simple", "s", first=60)  # timeout: 3s, retry 1
    args = ("run-worker", "-c", CONFIG, *FAST_ARGS, "--worker-class", "simple")
    victim = worker_cli.start(*args)
    run = first_run(taskkit_registry, "s")
    assert run["pid"] == victim.pid

    rescuer = started_beside(worker_cli, taskkit_registry, args)

    kill([victim.pid, *descendants(victim.pid)])
    bound = 3 + FAST.heartbeat_grace + FAST.maintenance_interval + wake_interval(FAST)
    wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=bound + 30)
    took = time.time() - run["start"]

    print(f"\nsimple worker killed: job retried {took:.1f}s after it started (bound {bound}s)")
    assert took <= bound + SLACK
    check_recovered(taskkit_registry, "s", JobStatus.FINISHED, job.id)
    assert worker_cli.stop(rescuer) == 0


# -- only the worker dies: its horse must not run on ----------------------------------------------


@pytest.mark.parametrize("worker_class", ["fork", "spawn"])
def test_a_horse_dies_with_its_worker_so_a_job_never_runs_twice_at_once(
    worker_cli: WorkerCli, taskkit_registry: Registry, worker_class: str
) -> None:
    job = taskkit_registry.enqueue("attempt_retried", "o", first=6, later=0.2)
    args = ("run-worker", "-c", CONFIG, *FAST_ARGS)
    victim = worker_cli.start(*args, "--worker-class", worker_class)
    run = first_run(taskkit_registry, "o")
    assert run["ppid"] == victim.pid, "the job runs in a work horse of the victim"
    horse = int(run["pid"])
    leftovers = descendants(victim.pid)

    kill([victim.pid])  # the worker only, not its horse
    wait_for(lambda: not pid_alive(horse), timeout=3, what="the horse to die with its worker")
    horse_gone = time.time()
    rescuer = worker_cli.start(*args)
    wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=FAST_BOUND + 30)

    runs, ends = records(taskkit_registry, "o"), records(taskkit_registry, "o", "ends")
    assert len(runs) == 2
    assert runs[1]["start"] >= horse_gone, "the retry started after the first run was gone"
    assert [end["pid"] for end in ends] == [runs[1]["pid"]], "the first run never ended"
    assert worker_cli.stop(rescuer) == 0
    kill(leftovers)  # RQ's scheduler process outlives a SIGKILLed worker


# -- only the horse dies (the out-of-memory killer), or it runs over its timeout -------------------


@pytest.mark.parametrize(("job_name", "outcome"), OUTCOMES)
def test_a_killed_work_horse_fails_or_retries_its_job_and_the_worker_goes_on(
    worker_cli: WorkerCli, taskkit_registry: Registry, job_name: str, outcome: JobStatus
) -> None:
    job = taskkit_registry.enqueue(job_name, "h", first=60)
    after = taskkit_registry.enqueue("noop")
    worker = worker_cli.start("run-worker", "-c", CONFIG)
    horse = int(first_run(taskkit_registry, "h")["pid"])

    os.kill(horse, signal.SIGKILL)
    wait_for_status(taskkit_registry, job, [outcome], timeout=20)
    wait_for_status(taskkit_registry, after, [JobStatus.FINISHED], timeout=20)

    assert worker.poll() is None, "the worker goes on"
    assert "killed by SIGKILL (the out-of-memory killer sends SIGKILL)" in worker_cli.stderr(worker)
    if outcome == JobStatus.FAILED:
        text = failure_text(taskkit_registry, job)
        assert "Work-horse terminated unexpectedly" in text
        assert "(signal 9)" in text
    else:
        assert fetch(taskkit_registry, job).return_value() == 2
    assert worker_cli.stop(worker) == 0


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
@pytest.mark.parametrize(
    ("job_name", "outcome"),
    [("short_timeout", JobStatus.FAILED), ("short_timeout_retried", JobStatus.FINISHED)],
)
def test_a_job_over_its_timeout_fails_or_is_retried_and_the_worker_goes_on(
    worker_cli: WorkerCli,
    taskkit_registry: Registry,
    worker_class: str,
    job_name: str,
    outcome: JobStatus,
) -> None:
    job = taskkit_registry.enqueue(job_name, "t", first=5)  # timeout: 1s
    after = taskkit_registry.enqueue("noop")

    done = worker_cli.run("run-worker", "-c", CONFIG, "--burst", "--worker-class", worker_class)

    assert done.returncode == 0, done.stderr
    assert status(taskkit_registry, job) == outcome
    assert status(taskkit_registry, after) == JobStatus.FINISHED
    ends = [end["pid"] for end in records(taskkit_registry, "t", "ends")]
    if outcome == JobStatus.FAILED:
        text = failure_text(taskkit_registry, job)
        assert "JobTimeoutException: Task exceeded maximum timeout value (1 seconds)" in text
        assert ends == [], "stopped at its timeout"
    else:
        assert fetch(taskkit_registry, job).return_value() == 2
        assert ends == [records(taskkit_registry, "t")[1]["pid"]]


# -- a worker dies between taking a job and starting it -------------------------------------------


def taken_but_never_started(registry: Registry) -> Job:
    """The state a worker leaves when it dies (or its horse cannot reach Redis) after
    taking a job off a queue (BLPOP) and registering it, before the job starts."""
    job = registry.enqueue("noop")
    conn = registry.connection
    assert conn.lpop("rq:queue:default") == job.id.encode()
    conn.zadd("rq:wip:default", {f"{job.id}:execution-1": time.time() - 60})
    return job


def test_a_job_taken_by_a_worker_that_died_before_starting_it_is_run(
    taskkit_registry: Registry,
) -> None:
    job = taken_but_never_started(taskkit_registry)
    run = run_burst_worker(taskkit_registry)
    assert run.finished == 1
    assert status(taskkit_registry, job) == JobStatus.FINISHED


def test_a_bare_rq_worker_loses_a_job_taken_but_never_started(taskkit_registry: Registry) -> None:
    """The control: RQ's cleanup drops the entry of a job that is not "started"."""
    job = taken_but_never_started(taskkit_registry)
    SimpleWorker(
        ["default"], connection=taskkit_registry.connection, serializer=JSONSerializer
    ).work(burst=True)
    conn = taskkit_registry.connection
    assert status(taskkit_registry, job) == JobStatus.QUEUED
    assert conn.llen("rq:queue:default") == 0
    assert conn.zcard("rq:wip:default") == 0, "in no queue and no registry: lost"


def test_rqs_scheduler_process_dies_with_its_worker(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    """Every worker runs RQ's scheduler in a forked process of its own; RQ's outlived a
    SIGKILLed worker, one orphan per kill, polling Redis for ever."""
    process = worker_cli.start("run-worker", "-c", CONFIG, *FAST_ARGS)
    conn = taskkit_registry.connection
    wait_for(lambda: Worker.count(connection=conn) == 1, what="the worker to start")
    wait_for(lambda: descendants(process.pid), what="RQ's scheduler process to start")
    scheduler = descendants(process.pid)

    kill([process.pid])
    process.wait(timeout=10)

    wait_for(lambda: not any(pid_alive(pid) for pid in scheduler), what="the scheduler to die")
