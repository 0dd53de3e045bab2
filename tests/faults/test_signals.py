"""SIGTERM and SIGINT: the first lets the job finish, a second stops it at once.

The first-signal cases for ``fork`` and ``simple`` are in tests/test_cli_worker.py
(``test_sigterm_lets_the_current_job_finish_then_exits_0``); here: ``spawn`` and a pool,
and the second signal, which RQ 3.0 answers by killing the horse and leaving its job
"started" until a maintenance pass, up to ~11 minutes later, calls it abandoned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_support import (
    CONFIG,
    FAULT_APPS,
    failure_text,
    fetch,
    records,
    status,
    wait_for_status,
)
from rq import Worker
from rq.job import JobStatus
from worker_support import WorkerCli, wait_for

from taskkit import Registry

pytestmark = pytest.mark.slow

REASON = "worker stopped by a second signal (SIGTERM) while this job ran"


def started(registry: Registry, tag: str, count: int = 1) -> bool:
    return len(records(registry, tag)) >= count


@pytest.mark.parametrize("worker_class", ["spawn"])
def test_sigterm_lets_a_spawned_job_finish_then_exits_0(
    worker_cli: WorkerCli, taskkit_registry: Registry, worker_class: str
) -> None:
    running = taskkit_registry.enqueue("attempt", "t", first=1.5)
    waiting = taskkit_registry.enqueue("noop")
    process = worker_cli.start("run-worker", "-c", CONFIG, "--worker-class", worker_class)
    wait_for(lambda: started(taskkit_registry, "t"), what="the job to start")

    assert worker_cli.stop(process) == 0, worker_cli.stderr(process)
    assert status(taskkit_registry, running) == JobStatus.FINISHED
    assert len(records(taskkit_registry, "t", "ends")) == 1
    assert status(taskkit_registry, waiting) == JobStatus.QUEUED, "no new job after SIGTERM"


def test_sigterm_lets_every_job_of_a_pool_finish_then_exits_0(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    running = [taskkit_registry.enqueue("attempt", f"p{n}", first=1.5) for n in range(2)]
    waiting = taskkit_registry.enqueue("noop")
    process = worker_cli.start("run-worker", "-c", CONFIG, "--processes", "2")
    wait_for(
        lambda: started(taskkit_registry, "p0") and started(taskkit_registry, "p1"),
        what="both jobs to start",
    )

    assert worker_cli.stop(process) == 0, worker_cli.stderr(process)
    assert [status(taskkit_registry, job) for job in running] == [JobStatus.FINISHED] * 2
    assert status(taskkit_registry, waiting) == JobStatus.QUEUED


@pytest.mark.parametrize(
    ("worker_class", "job_name", "outcome"),
    [
        ("fork", "attempt_retried", JobStatus.QUEUED),
        ("fork", "attempt", JobStatus.FAILED),
        ("simple", "attempt_retried", JobStatus.QUEUED),
        ("simple", "attempt", JobStatus.FAILED),
        ("spawn", "attempt", JobStatus.FAILED),
    ],
)
def test_a_second_sigterm_stops_the_job_at_once_and_retries_or_fails_it(
    worker_cli: WorkerCli,
    taskkit_registry: Registry,
    worker_class: str,
    job_name: str,
    outcome: JobStatus,
) -> None:
    job = taskkit_registry.enqueue(job_name, "j", first=60)
    process = worker_cli.start("run-worker", "-c", CONFIG, "--worker-class", worker_class)
    wait_for(lambda: started(taskkit_registry, "j"), what="the job to start")

    process.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # RQ ignores a second signal within 1 s (a pool relays the first one)
    assert process.poll() is None, "the first SIGTERM waits for the job"
    second = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=15)
    stopped_in = time.monotonic() - second

    stderr = worker_cli.stderr(process)
    assert code == 0, stderr
    assert stopped_in < 5, f"the second signal took {stopped_in:.1f}s to stop the worker"
    assert "unhandled exception" not in stderr
    assert records(taskkit_registry, "j", "ends") == [], "the job was interrupted"
    assert status(taskkit_registry, job) == outcome
    assert REASON in stderr
    if outcome == JobStatus.FAILED:
        assert REASON in failure_text(taskkit_registry, job)
    else:  # retried: back on its queue, and a worker runs it to the end
        assert fetch(taskkit_registry, job).retries_left == 0
        done = worker_cli.run("run-worker", "-c", CONFIG, "--burst")
        assert done.returncode == 0, done.stderr
        assert fetch(taskkit_registry, job).return_value() == 2
    assert taskkit_registry.connection.zcard("rq:wip:default") == 0, "nothing left 'started'"


def test_a_second_sigterm_stops_every_job_of_a_pool_and_retries_or_fails_each(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    """The pool relays each SIGTERM to its workers (as SIGINT): the second one, 1 s or
    more after the first, stops the job of each worker at once."""
    retried = taskkit_registry.enqueue("attempt_retried", "q0", first=60)
    failed = taskkit_registry.enqueue("attempt", "q1", first=60)
    process = worker_cli.start("run-worker", "-c", CONFIG, "--processes", "2")
    wait_for(
        lambda: started(taskkit_registry, "q0") and started(taskkit_registry, "q1"),
        what="a job in each pool worker",
    )
    runs = records(taskkit_registry, "q0") + records(taskkit_registry, "q1")
    assert runs[0]["ppid"] != runs[1]["ppid"], "one job in each pool worker"

    process.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # RQ ignores a second signal within 1 s (a pool relays the first one)
    assert process.poll() is None, "the first SIGTERM waits for the jobs"
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)

    stderr = worker_cli.stderr(process)
    assert code == 0, stderr
    assert "unhandled exception" not in stderr
    assert "Traceback" not in stderr
    for tag in ("q0", "q1"):
        assert records(taskkit_registry, tag, "ends") == [], "the jobs were interrupted"
    assert status(taskkit_registry, retried) == JobStatus.QUEUED
    assert fetch(taskkit_registry, retried).retries_left == 0
    assert status(taskkit_registry, failed) == JobStatus.FAILED
    assert "worker stopped by a second signal (SIGINT) while this job ran" in failure_text(
        taskkit_registry, failed
    ), "the pool relays SIGTERM to its workers as SIGINT"
    assert taskkit_registry.connection.zcard("rq:wip:default") == 0, "nothing left 'started'"
    done = worker_cli.run("run-worker", "-c", CONFIG, "--burst")
    assert done.returncode == 0, done.stderr
    assert fetch(taskkit_registry, retried).return_value() == 2


def test_the_job_that_ends_as_the_second_signal_comes_keeps_its_result(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    """A second signal right after the job finished must not turn it into a failure."""
    job = taskkit_registry.enqueue("attempt", "e", first=1.3)
    process = worker_cli.start("run-worker", "-c", CONFIG)
    wait_for(lambda: started(taskkit_registry, "e"), what="the job to start")
    process.send_signal(signal.SIGTERM)
    wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=10)
    time.sleep(0.2)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert status(taskkit_registry, job) == JobStatus.FINISHED


# -- a stop while the worker starts ----------------------------------------------------------------

SLOW_START = str(FAULT_APPS / "jobs-slow-start.yaml")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_the_app_is_built_exits_0_and_takes_no_job(
    worker_cli: WorkerCli, taskkit_registry: Registry, tmp_path: Path, sig: signal.Signals
) -> None:
    """Loading jobs.yaml and the app factory can take seconds; a process manager's stop
    then killed the worker by signal (exit -15)."""
    marker = tmp_path / "factory-started"
    worker_cli.env["LEDGER_STARTING_MARKER"] = str(marker)
    job = taskkit_registry.enqueue("noop")
    process = worker_cli.start("run-worker", "-c", SLOW_START)
    wait_for(marker.exists, what="the app factory to start")

    process.send_signal(sig)

    assert process.wait(timeout=30) == 0, worker_cli.stderr(process)
    output = worker_cli.stderr(process)
    assert f"{sig.name} while starting: exiting before taking any job" in output
    assert "Traceback" not in output
    assert status(taskkit_registry, job) == JobStatus.QUEUED
    assert Worker.count(connection=taskkit_registry.connection) == 0


def test_a_stop_while_the_worker_registers_deregisters_it_and_takes_no_job(
    taskkit_registry: Registry,
) -> None:
    """RQ registers the worker, then installs its handlers: a SIGTERM in between killed
    it and left it registered (in `rq info`) until its key expired."""
    job = taskkit_registry.enqueue("noop")
    script = (
        "import os, signal, sys\n"
        "from taskkit.worker import make_worker, prepare_process\n"
        "from taskkit.registry import load\n"
        "registry = load(sys.argv[1])\n"
        "prepare_process(registry, fork_hygiene=False)\n"
        "worker = make_worker(registry, worker_class='simple')\n"
        "register = worker.register_birth\n"
        "def register_then_signal(*args, **kwargs):\n"
        "    register(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # after registration, before RQ's handlers\n"
        "worker.register_birth = register_then_signal\n"
        "print('worked', worker.work())\n"
    )
    env = {**os.environ, "REDIS_URL": taskkit_registry.redis_url.reveal()}
    done = subprocess.run(
        [sys.executable, "-c", script, CONFIG],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "worked False"
    assert "stopping on request" in done.stdout  # RQ's warm shutdown, teardown included
    assert "SIGTERM while starting: stopping before the first job" in done.stdout + done.stderr
    assert status(taskkit_registry, job) == JobStatus.QUEUED
    assert Worker.count(connection=taskkit_registry.connection) == 0


def test_a_stopped_worker_held_up_by_the_apps_thread_exits_on_the_next_signal(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    """After the worker stopped, Python waits for the app's non-daemon threads; a process
    manager's next SIGTERM must end it (with the status it was leaving with), not be
    ignored until SIGKILL."""
    process = worker_cli.start("run-worker", "-c", str(FAULT_APPS / "jobs-lingering-thread.yaml"))
    conn = taskkit_registry.connection
    wait_for(lambda: Worker.count(connection=conn) == 1, what="the worker to start")
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: Worker.count(connection=conn) == 0, what="the worker to deregister")
    time.sleep(1.5)  # the worker's loop has ended; the interpreter waits for the thread
    assert process.poll() is None, "the app's thread should keep the process alive"

    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=15) == 0, worker_cli.stderr(process)
