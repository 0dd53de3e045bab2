"""A stopping worker exits within seconds, every time, whatever kind it is.

redis-py 8.2's ``PubSubWorkerThread.stop()`` joins the command channel's thread with no
timeout while it sits in a 60 s read; RQ calls it on the way out, so about one stop in
eight waited up to a minute. Twenty stops in a row, idle and busy, across the fork and
simple workers, a pool and a worker with the scheduler beside it: each must exit 0 within
:data:`EXIT_WITHIN` seconds of its SIGTERM (a busy one after finishing its short job).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Worker
from rq.job import JobStatus
from worker_support import PROBE_JOBS, WorkerCli, wait_for

from taskkit import Registry
from taskkit.worker import make_worker

pytestmark = pytest.mark.slow

STOPS = 20
EXIT_WITHIN = 5.0
JOB_SECONDS = 0.3
KINDS: dict[str, tuple[str, ...]] = {
    "fork": ("--worker-class", "fork"),
    "simple": ("--worker-class", "simple"),
    "pool": ("--processes", "2"),
    "with-scheduler": ("--with-scheduler",),
}


def idle_workers(connection: redis.Redis) -> int:
    return sum(worker.get_state() == "idle" for worker in Worker.all(connection=connection))


def stop_and_time(worker_cli: WorkerCli, process: subprocess.Popen[bytes]) -> float:
    """SIGTERM ``process``; the seconds until it exited (it must exit 0)."""
    sent = time.monotonic()
    code = worker_cli.stop(process, timeout=90)
    took = time.monotonic() - sent
    assert code == 0, worker_cli.stderr(process)
    return took


@pytest.mark.timeout(900)  # twenty worker starts; a loaded machine takes seconds for each
def test_twenty_stops_in_a_row_each_exit_within_seconds(
    worker_cli: WorkerCli, taskkit_registry: Registry, tmp_path: Path
) -> None:
    connection = taskkit_registry.connection
    plan = list(itertools.islice(itertools.cycle(itertools.product(KINDS, (False, True))), STOPS))
    slow: list[str] = []
    for number, (kind, busy) in enumerate(plan):
        expected = 2 if kind == "pool" else 1
        process = worker_cli.start("run-worker", "-c", str(PROBE_JOBS), *KINDS[kind])
        wait_for(
            lambda n=expected: idle_workers(connection) >= n, timeout=60, what="idle workers"
        )
        job = None
        if busy:
            marker = tmp_path / f"started-{number}"
            job = taskkit_registry.enqueue("mark_then_sleep", str(marker), JOB_SECONDS)
            wait_for(marker.exists, timeout=60, what="the job to start")
        took = stop_and_time(worker_cli, process)
        if job is not None:
            assert job.get_status(refresh=True) == JobStatus.FINISHED, "the job in hand finishes"
        if took > EXIT_WITHIN:
            slow.append(f"stop {number + 1} ({kind}, {'busy' if busy else 'idle'}): {took:.1f} s")
        wait_for(lambda: not Worker.all(connection=connection), what="the worker deregistered")
    assert not slow, f"stops that took over {EXIT_WITHIN:g} s: {slow}"


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_stop_signal_during_the_teardown_is_noted_not_raised(
    taskkit_registry: Registry, worker_class: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst worker that is finishing gets SIGTERM while it deregisters: RQ's handler
    raised StopRequested out of the teardown, skipping the rest of it, and the command
    ended with an error. The worker must finish its teardown and leave Redis clean."""
    worker = make_worker(taskkit_registry, None, worker_class)  # type: ignore[arg-type]
    register_death = type(worker).register_death

    def signalled_then_register_death(self: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, inside the teardown
        register_death(self)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(type(worker), "register_death", signalled_then_register_death)
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert not Worker.all(connection=taskkit_registry.connection), "deregistered"
