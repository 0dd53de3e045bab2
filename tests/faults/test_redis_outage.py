"""Redis goes away: workers wait and go on, or give up with one clear line; enqueue fails
cleanly and never half-writes.

What is guaranteed, honestly: a Redis restarted *without* persistence comes back empty,
so only jobs enqueued after it and the job a worker was running (which finishes from the
worker's memory) can be saved; with an append-only file (``appendfsync always``) nothing
acknowledged is lost. The busy-restart tests use such a server (``private_redis``).
The CLI's ``taskkit enqueue`` with Redis down is in tests/test_cli_worker.py.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fault_support import (
    CONFIG,
    FAST_ARGS,
    FAST_BOUND,
    FAULT_JOBS,
    FakeClock,
    PrivateRedis,
    fetch,
    records,
    wait_for_status,
)
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue, Worker
from rq.exceptions import StopRequested
from rq.job import JobStatus
from worker_support import WorkerCli, wait_for

from taskkit import Registry
from taskkit.config import WorkerConfig
from taskkit.errors import RedisUnavailableError
from taskkit.redis_server import EmbeddedRedis
from taskkit.registry import load
from taskkit.testing import use_redis
from taskkit.worker import RedisGoneError, TaskkitSimpleWorker, wait_for_redis

pytestmark = pytest.mark.slow


def states(conn: redis.Redis) -> list[str]:
    return sorted(worker.get_state() for worker in Worker.all(connection=conn))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- a worker and a Redis restart ------------------------------------------------------------------


def test_an_idle_worker_outlives_a_redis_restart_and_registers_again(
    worker_cli: WorkerCli, taskkit_registry: Registry, embedded_redis: EmbeddedRedis
) -> None:
    worker_cli.env["REDIS_URL"] = embedded_redis.url
    with use_redis(taskkit_registry, embedded_redis.url) as conn:
        process = worker_cli.start("run-worker", "-c", CONFIG, *FAST_ARGS)
        wait_for(lambda: states(conn) == ["idle"], what="the worker to listen")

        embedded_redis.restart()  # an empty server at the same address
        job = taskkit_registry.enqueue("attempt", "i")

        wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=30)
        wait_for(lambda: Worker.count(connection=conn) == 1, what="the worker to register again")
        assert process.poll() is None
        assert worker_cli.stop(process) == 0, worker_cli.stderr(process)


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_a_job_running_while_redis_crashes_finishes_once(
    worker_cli: WorkerCli,
    taskkit_registry: Registry,
    private_redis: PrivateRedis,
    worker_class: str,
    tmp_path: Path,
) -> None:
    """The outage (4 s) outlasts the job's heartbeat (3 s): the idle second worker must not
    take the running job for abandoned when Redis is back. The job runs until the test
    releases it, after the idle worker has had its maintenance passes."""
    worker_cli.env["REDIS_URL"] = private_redis.url
    release = tmp_path / "release"
    with use_redis(taskkit_registry, private_redis.url) as conn:
        job = taskkit_registry.enqueue("hold_retried", "b", str(release))
        args = ("run-worker", "-c", CONFIG, *FAST_ARGS)
        busy = worker_cli.start(*args, "--worker-class", worker_class)
        wait_for(lambda: records(taskkit_registry, "b"), what="the job to start")
        idle = worker_cli.start(*args, "--worker-class", "simple")
        wait_for(lambda: states(conn) == ["busy", "idle"], what="one worker busy, one idle")

        private_redis.crash()
        time.sleep(4)
        private_redis.start()  # with its append-only file: nothing acknowledged is lost
        wait_for(lambda: states(conn) == ["busy", "idle"], what="both workers back")
        # Time for the idle worker's maintenance to take the job for abandoned, were it to.
        time.sleep(FAST_BOUND)
        release.touch()

        wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=40)
        after = taskkit_registry.enqueue("noop")
        wait_for_status(taskkit_registry, after, [JobStatus.FINISHED], timeout=30)
        assert len(records(taskkit_registry, "b")) == 1, "the job ran once"
        assert len(records(taskkit_registry, "b", "ends")) == 1
        for process in (busy, idle):
            assert worker_cli.stop(process) == 0, worker_cli.stderr(process)


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_a_job_that_ends_while_redis_is_down_is_retried_when_it_is_back(
    worker_cli: WorkerCli,
    taskkit_registry: Registry,
    private_redis: PrivateRedis,
    worker_class: str,
) -> None:
    """Its outcome cannot be recorded: it stays "started", is recovered as abandoned once
    Redis is back, and (having a retry left) runs again. The worker goes on."""
    worker_cli.env["REDIS_URL"] = private_redis.url
    with use_redis(taskkit_registry, private_redis.url):
        job = taskkit_registry.enqueue("attempt_simple", "d", first=2)  # timeout 3s, 1 retry
        args = ("run-worker", "-c", CONFIG, *FAST_ARGS, "--worker-class", worker_class)
        process = worker_cli.start(*args)
        wait_for(lambda: records(taskkit_registry, "d"), what="the job to start")

        private_redis.crash()
        time.sleep(4)  # the job ends meanwhile; its result cannot be written
        private_redis.start()

        wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=40)
        assert fetch(taskkit_registry, job).return_value() == 2, "run again, as abandoned"
        assert process.poll() is None, "the worker went on"
        assert worker_cli.stop(process) == 0, worker_cli.stderr(process)


def test_a_worker_started_before_redis_waits_for_it(
    worker_cli: WorkerCli, taskkit_registry: Registry, private_redis: PrivateRedis
) -> None:
    worker_cli.env["REDIS_URL"] = private_redis.url
    private_redis.stop()
    process = worker_cli.start("run-worker", "-c", CONFIG, "--redis-timeout", "60")
    # Redis starts only once the worker says it waits (a loaded machine may take seconds
    # to start the worker: a fixed sleep let Redis be up before the worker looked).
    wait_for(
        lambda: "waiting for Redis at 127.0.0.1" in worker_cli.stderr(process),
        timeout=60,
        what="the worker to wait for Redis",
    )
    private_redis.start()
    with use_redis(taskkit_registry, private_redis.url):
        job = taskkit_registry.enqueue("noop")
        wait_for_status(taskkit_registry, job, [JobStatus.FINISHED], timeout=30)
    assert worker_cli.stop(process) == 0


# -- Redis does not come back ----------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("--processes", "2")], ids=["worker", "pool"])
def test_a_worker_gives_up_after_the_redis_timeout_with_one_clear_line(
    worker_cli: WorkerCli, password_redis: PrivateRedis, extra: tuple[str, ...]
) -> None:
    worker_cli.env["REDIS_URL"] = password_redis.url
    process = worker_cli.start("run-worker", "-c", CONFIG, "--redis-timeout", "3", *extra)
    client = password_redis.client()
    wait_for(lambda: Worker.count(connection=client) >= 1, what="the worker to register")
    client.close()

    password_redis.stop()
    stopped = time.monotonic()
    code = process.wait(timeout=90)
    took = time.monotonic() - stopped

    stderr = worker_cli.stderr(process)
    print(f"\nRedis gone ({extra or 'fork'}): the worker exited {code} after {took:.1f}s")
    assert code == 1, stderr
    (line,) = error_lines(stderr)
    assert "cannot keep running the worker (no answer from Redis for 3 s" in line
    assert "Redis at redis://:***@127.0.0.1:" in line
    assert "Traceback" not in stderr
    assert password_redis.password not in stderr
    assert took < 40


def test_a_worker_with_no_redis_at_start_exits_1_after_the_timeout(worker_cli: WorkerCli) -> None:
    worker_cli.env["REDIS_URL"] = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens there
    started = time.monotonic()
    done = worker_cli.run("run-worker", "-c", CONFIG, "--redis-timeout", "2")
    assert done.returncode == 1
    assert time.monotonic() - started < 20
    (line,) = error_lines(done.stderr)
    assert line.startswith("error: cannot start the worker (no answer from Redis for 2 s")
    assert "waiting for Redis at 127.0.0.1:1/0" in done.stderr
    assert "s3cret-pw" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_wrong_password_is_an_error_at_once(
    worker_cli: WorkerCli, password_redis: PrivateRedis
) -> None:
    assert password_redis.password is not None
    worker_cli.env["REDIS_URL"] = password_redis.url.replace(password_redis.password, "wr0ng-pw")
    started = time.monotonic()
    done = worker_cli.run("run-worker", "-c", CONFIG, "--redis-timeout", "60")
    assert done.returncode == 1
    assert time.monotonic() - started < 15, "no waiting for a password to become right"
    (line,) = error_lines(done.stderr)
    assert "refused the password" in line
    assert "wr0ng-pw" not in done.stderr
    assert "Traceback" not in done.stderr


# -- the backoff between tries -------------------------------------------------------------------


def trying_once(url: str) -> redis.Redis:
    """A client that sends each command once: redis-py's own retries (with sleeps of
    their own) would hide taskkit's spacing of the tries."""
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))


def test_a_worker_waiting_for_redis_at_start_backs_off_up_to_10_s_then_gives_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``wait_for_redis`` (a worker's or pool worker's start): tries 0.5, 1, 2, 4, 8, then
    10 s apart, the last wait cut to the deadline; then the "cannot start" error."""
    clock = FakeClock(monkeypatch)
    client = trying_once("redis://127.0.0.1:1/0")  # nothing listens there
    with caplog.at_level(logging.WARNING, "taskkit.worker"), pytest.raises(RedisGoneError) as gone:
        wait_for_redis(client, 60)

    assert clock.sleeps == [0.5, 1, 2, 4, 8, 10, 10, 10, 10, 4.5]
    assert gone.value.at_start, "the CLI says: cannot start the worker"
    assert str(gone.value) == "no answer from Redis for 60 s"
    assert isinstance(gone.value.last_error, redis.ConnectionError)
    waiting = [r for r in caplog.records if r.getMessage().startswith("waiting for Redis")]
    assert len(waiting) == 1, "one line, not one per try"


def test_an_idle_worker_that_lost_redis_tries_1_2_4_up_to_10_s_apart_then_gives_up(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reliability.md: "every worker retries with backoff (1, 2, 4, up to 10 s apart)" (RQ's own
    backoff grows to 60 s); past ``redis_timeout`` the idle worker stops."""
    settings = WorkerConfig(redis_timeout=60)
    worker_class = type("Worker", (TaskkitSimpleWorker,), {"settings": settings})
    worker = worker_class(["default"], connection=trying_once(private_redis.url))
    private_redis.crash()
    clock = FakeClock(monkeypatch)

    with pytest.raises(StopRequested):
        worker.dequeue_job_and_maintain_ttl(timeout=1)

    assert clock.sleeps == [1, 2, 4, 8, 10, 10, 10, 10, 10]
    assert sum(clock.sleeps[:-1]) < settings.redis_timeout <= sum(clock.sleeps)
    assert isinstance(worker.redis_gone, RedisGoneError)
    assert not worker.redis_gone.at_start, "the CLI says: cannot keep running the worker"
    assert worker.redis_gone.seconds == 60


# -- enqueue ----------------------------------------------------------------------------------


def test_enqueue_while_redis_is_down_is_a_taskkit_error_and_writes_nothing(
    password_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", password_redis.url)
    registry = load(FAULT_JOBS, cached=False)
    calls = {
        "enqueue": lambda: registry.enqueue("noop"),
        "enqueue_many": lambda: registry.enqueue_many([("noop", (), {})] * 3),
        "enqueue_in": lambda: registry.enqueue_in(timedelta(minutes=1), "noop"),
    }
    password_redis.stop()
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(RedisUnavailableError) as caught:
            call()
        took = time.monotonic() - started
        print(f"\n{name} with Redis down failed after {took:.2f}s: {caught.value}")
        assert f"Redis at redis://:***@127.0.0.1:{password_redis.port}/0 is not reachable" in str(
            caught.value
        )
        assert str(password_redis.password) not in str(caught.value)
        assert took < 10
    password_redis.start()
    conn = password_redis.client()
    assert conn.dbsize() == 0, "nothing was half-written"
    registry.enqueue_many([("noop", (), {})] * 3)
    assert Queue("default", connection=conn).count == 3


def test_a_batch_redis_refuses_is_not_half_written(
    taskkit_registry: Registry, private_redis: PrivateRedis
) -> None:
    with use_redis(taskkit_registry, private_redis.url) as conn:
        conn.set("filler", "x" * 2_000_000)
        conn.config_set("maxmemory", "1mb")  # every write is refused from now on
        batch = [("attempt", (f"secret-arg-{n}",), {}) for n in range(5)]
        with pytest.raises(RedisUnavailableError) as caught:
            taskkit_registry.enqueue_many(batch)
        conn.config_set("maxmemory", "0")

        message = str(caught.value)
        assert "refused the write (command not allowed when used memory > 'maxmemory')" in message
        assert "nothing was enqueued; free memory in Redis" in message
        assert "secret-arg" not in message, "redis-py's echo of the commands is not shown"
        assert conn.keys("*") == [b"filler"]


def test_enqueue_many_is_one_transaction(
    taskkit_registry: Registry, private_redis: PrivateRedis
) -> None:
    """What makes "all or nothing" true: the batch reaches Redis as one MULTI ... EXEC."""
    with use_redis(taskkit_registry, private_redis.url) as conn:
        conn.ping()
        watcher = private_redis.client()
        with watcher.monitor() as monitor:
            taskkit_registry.enqueue_many([("noop", (), {})] * 3)
            conn.echo("end of test")
            commands = []
            while "end of test" not in (command := monitor.next_command()["command"]):
                commands.append(command.split()[0].upper())
        watcher.close()

    writes = [i for i, name in enumerate(commands) if name in {"HSET", "RPUSH", "SADD"}]
    assert commands.count("MULTI") == commands.count("EXEC") == 1, commands
    assert commands.count("HSET") == 3, commands  # one hash per job; ids in one RPUSH
    assert commands.index("MULTI") < writes[0] and writes[-1] < commands.index("EXEC")
