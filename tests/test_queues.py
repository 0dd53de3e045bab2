"""``taskkit queues list | pause | resume | drain``, and real workers skipping a paused queue.

Workers learn of a pause within a second or two: each logs the change when it sees it
(an event the tests wait for). The proof that a paused queue is skipped uses priority:
its jobs wait on the *first* queue, so a worker that ignored the pause would take them
before the jobs of the second queue that the test watches run.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import Worker
from worker_support import WorkerCli, wait_for

from taskkit import queues
from taskkit.cli import cli
from taskkit.errors import QueueError
from taskkit.registry import Registry
from taskkit.testing import run_burst_worker
from taskkit.worker import make_worker, prepare_process


def invoke(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, list(args))
    return done.exit_code, done.output


# -- the commands -----------------------------------------------------------------------------


def test_pause_and_resume_show_in_queues_list_and_status(ops: Registry, ops_config: Path) -> None:
    ops.enqueue("ping")
    code, out = invoke("queues", "pause", "default", "-c", str(ops_config))
    assert code == 0, out
    assert "paused queue default" in out
    assert invoke("queues", "pause", "default", "-c", str(ops_config))[1].startswith(
        "queue default was paused already"
    )

    code, out = invoke("queues", "list", "-c", str(ops_config), "--json")
    listed = {q["name"]: q for q in json.loads(out)}
    assert listed["default"]["paused"] is True
    assert listed["default"]["queued"] == 1
    assert listed["high"]["paused"] is False
    table = invoke("queues", "list", "-c", str(ops_config))[1]
    assert any(line.split()[:3] == ["default", "paused", "1"] for line in table.splitlines())
    status = json.loads(invoke("status", "-c", str(ops_config), "--json")[1])
    assert {q["name"]: q["paused"] for q in status["queues"]} == {"high": False, "default": True}
    assert "paused" in invoke("status", "-c", str(ops_config))[1]

    code, out = invoke("queues", "resume", "default", "-c", str(ops_config))
    assert (code, out.strip()) == (0, "resumed queue default")
    assert not queues.is_paused(ops, "default")
    assert invoke("queues", "resume", "default", "-c", str(ops_config))[1].strip() == (
        "queue default was not paused"
    )


def test_an_undeclared_queue_is_one_line_naming_the_queues(
    ops_config: Path, worker_cli: WorkerCli
) -> None:
    done = worker_cli.run("queues", "pause", "nope", "-c", str(ops_config))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: no queue 'nope' in {ops_config} (queues: high, default); see `taskkit queues list`"
    ]


def test_a_paused_queue_keeps_its_jobs_and_a_burst_worker_leaves_them(ops: Registry) -> None:
    waiting = ops.enqueue("ping", value="later")
    now = ops.enqueue("login", user="x", password="y")  # on queue high
    queues.pause(ops, "default")

    run = run_burst_worker(ops)

    assert (run.finished, run.failed) == (0, 1)  # only the job of queue high ran (it fails)
    assert ops.queue("default").get_job_ids() == [waiting.id]
    assert now.get_status(refresh=True) == "failed"
    queues.resume(ops, "default")
    assert run_burst_worker(ops).finished == 1


@pytest.mark.slow
def test_drain_waits_for_the_queue_to_empty_and_its_jobs_to_end(
    ops: Registry, ops_config: Path, redis_conn: redis.Redis, worker_cli: WorkerCli
) -> None:
    job = ops.enqueue("block_until", key="drain-release")
    worker = worker_cli.start("run-worker", "-c", str(ops_config), "--burst")
    wait_for(lambda: redis_conn.exists("drain-release:running"), what="the job to start")
    assert queues.load_of(ops, "default") == queues.QueueLoad(queued=0, running=1)
    with pytest.raises(QueueError, match=r"did not drain within 0.2 s \(0 queued, 1 running\)"):
        queues.drain(ops, "default", timeout=0.2, poll=0.05)

    redis_conn.set("drain-release", 1)
    code, out = invoke("queues", "drain", "default", "-c", str(ops_config), "--timeout", "60")
    assert code == 0, out
    assert out.startswith("queue default is drained")
    assert job.get_status(refresh=True) == "finished"
    assert worker.wait(timeout=60) == 0


def test_drain_of_a_paused_queue_with_jobs_says_to_resume_it(
    ops: Registry, ops_config: Path, worker_cli: WorkerCli
) -> None:
    ops.enqueue("ping")
    queues.pause(ops, "default")
    done = worker_cli.run("queues", "drain", "default", "-c", str(ops_config), "--timeout", "60")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: queue 'default' is paused with 1 job(s) waiting: it cannot drain; resume it "
        "first (`taskkit queues resume default`)"
    ]


def test_a_worker_whose_queues_are_all_paused_waits_without_busy_looping(
    ops: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It reads the paused set about once per second, by the code's own clock, and takes
    the queue's job once it is resumed."""
    prepare_process(ops, fork_hygiene=False)
    job = ops.enqueue("ping", value="after resume")
    queues.pause(ops, "default")
    reads: list[float] = []
    real = queues.paused_names

    def counted(conn: redis.Redis) -> set[str]:
        import time

        reads.append(time.monotonic())
        if len(reads) == 4:
            ops.connection.srem(queues.PAUSED_KEY, "default")  # resume after a few looks
        return real(conn)

    monkeypatch.setattr(queues, "paused_names", counted)
    worker = make_worker(ops, ["default"], "simple")
    worker.work(max_jobs=1)

    assert job.get_status(refresh=True) == "finished"
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert len(reads) >= 4
    assert min(gaps[:3]) >= queues.RECHECK_EVERY * 0.9, gaps  # no busy loop while paused


# -- real workers on every host and class ---------------------------------------------------------


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def _worker_count(conn: redis.Redis) -> int:
    return len(Worker.all(connection=conn))


@pytest.mark.slow
def test_two_workers_and_a_pool_skip_a_paused_queue_and_take_it_up_on_resume(
    ops_config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis, ops: Registry
) -> None:
    fast = ("--maintenance-interval", "3s")  # idle workers wake every second
    started = [
        worker_cli.start("run-worker", "-c", str(ops_config), *fast),
        worker_cli.start("run-worker", "-c", str(ops_config), "--worker-class", "simple", *fast),
        worker_cli.start("run-worker", "-c", str(ops_config), "--processes", "2", *fast),
    ]
    try:
        wait_for(lambda: _worker_count(redis_conn) == 4, timeout=90, what="4 workers")

        assert invoke("queues", "pause", "high", "-c", str(ops_config))[0] == 0
        logs = lambda: "".join(worker_cli.stderr(p) for p in started)  # noqa: E731
        wait_for(
            lambda: logs().count("paused queues: high; taking jobs from default") == 4,
            timeout=60,
            what="every worker to log that it skips queue high",
        )
        # Queue high comes first: a worker that ignored the pause would take these first.
        held = [ops.enqueue("login", user=f"u{i}", password="pw") for i in range(6)]
        blockers = [ops.enqueue("block_until", key=f"hold-{i}") for i in range(4)]
        wait_for(
            lambda: all(redis_conn.exists(f"hold-{i}:running") for i in range(4)),
            timeout=60,
            what="each of the 4 workers to take a job of queue default",
        )
        assert ops.queue("high").get_job_ids() == [job.id for job in held]
        for i in range(4):
            redis_conn.set(f"hold-{i}", 1)
        finished = lambda: all(b.get_status(refresh=True) == "finished" for b in blockers)  # noqa: E731
        wait_for(finished, timeout=60, what="the blocking jobs to finish")
        assert ops.queue("high").count == 6

        assert invoke("queues", "resume", "high", "-c", str(ops_config))[0] == 0
        wait_for(
            lambda: all(job.get_status(refresh=True) == "failed" for job in held),
            timeout=60,
            what="the jobs of queue high to run after the resume",
        )
        for process in started:
            assert worker_cli.stop(process) == 0
    finally:
        _stop_all(started)  # a pool's workers outlive a SIGKILLed parent


@pytest.mark.slow
def test_a_spawn_worker_waits_while_its_only_queue_is_paused(
    ops_config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis, ops: Registry
) -> None:
    queues.pause(ops, "default")
    job = ops.enqueue("ping", value="spawned")
    process = worker_cli.start(
        "run-worker", "-c", str(ops_config), "--queues", "default", "--worker-class", "spawn"
    )
    wait_for(
        lambda: "paused queues: default; taking jobs from none" in worker_cli.stderr(process),
        timeout=60,
        what="the worker to see its only queue paused",
    )
    assert ops.queue("default").get_job_ids() == [job.id]
    queues.resume(ops, "default")
    wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=60)
    assert "no queue is paused; taking jobs from default" in worker_cli.stderr(process)
    assert worker_cli.stop(process) == 0
