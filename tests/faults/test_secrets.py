"""The Redis password never shows: not in worker logs, errors, ``taskkit status`` or
``taskkit list``, and not in anything taskkit or RQ stores in Redis.

The server is a private ``redis-server --requirepass``. Errors with the password in the
URL are also checked where they happen: test_redis_outage.py (Redis gone, no Redis at
start, a wrong password, enqueue with Redis down) and tests/test_cli_worker.py
(``taskkit enqueue`` with Redis down).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_support import CONFIG, FAULT_JOBS, PrivateRedis, records, status
from rq.job import JobStatus
from worker_support import WorkerCli, wait_for

from taskkit.registry import Registry, load

pytestmark = pytest.mark.slow


def use_password_redis(
    server: PrivateRedis, worker_cli: WorkerCli, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    """Point this process and the workers the test starts at ``server``; the fault jobs."""
    monkeypatch.setenv("REDIS_URL", server.url)
    worker_cli.env["REDIS_URL"] = server.url
    return load(FAULT_JOBS, cached=False)


def test_the_password_never_shows_in_logs_output_or_redis(
    worker_cli: WorkerCli, password_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = str(password_redis.password)
    registry = use_password_redis(password_redis, worker_cli, monkeypatch)
    registry.enqueue("attempt", "ok")
    registry.enqueue("short_timeout", "slow", first=3)  # fails: over its 1 s timeout
    registry.connection.rpush("rq:queue:default", "no-such-job")  # garbage, skipped

    worker_args = ("--burst", "--log-level", "DEBUG")
    outputs = {
        "run-worker": worker_cli.run("run-worker", "-c", CONFIG, *worker_args, "--with-scheduler"),
        "status": worker_cli.run("status", "-c", CONFIG),
        "status --json": worker_cli.run("status", "-c", CONFIG, "--json"),
        "list": worker_cli.run("list", "-c", CONFIG),
        "enqueue": worker_cli.run("enqueue", "-c", CONFIG, "noop"),
        "failed list": worker_cli.run("failed", "list", "-c", CONFIG),
    }

    for command, done in outputs.items():
        assert done.returncode == 0, (command, done.stderr)
        assert password not in done.stdout + done.stderr, command
    assert "redis://:***@127.0.0.1" in outputs["list"].stdout
    assert "redis://:***@127.0.0.1" in outputs["status"].stdout
    worker_log = outputs["run-worker"].stderr
    assert "attempt queue=default" in worker_log
    assert "JobTimeoutException" in worker_log

    stored = dump(password_redis)
    assert len(stored) > 10
    assert not [key for key, value in stored.items() if password.encode() in key + value]


def test_a_password_in_a_job_argument_never_shows_in_what_taskkit_shows_of_the_job(
    worker_cli: WorkerCli, password_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Job descriptions (rq info, rq-dashboard), the worker's log, `taskkit failed`."""
    password = str(password_redis.password)
    registry = use_password_redis(password_redis, worker_cli, monkeypatch)
    job = registry.enqueue("refuse_url", password_redis.url)
    assert password not in str(job.description)
    assert "redis://:***@127.0.0.1" in str(job.description)

    worked = worker_cli.run("run-worker", "-c", CONFIG, "--burst", "--log-level", "DEBUG")
    listed = worker_cli.run("failed", "list", "-c", CONFIG)
    shown = worker_cli.run("failed", "show", "-c", CONFIG, job.id)

    assert status(registry, job) == JobStatus.FAILED
    for done in (worked, listed, shown):
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
    assert "redis://:***@127.0.0.1" in shown.stdout
    stored = registry.connection.hget(f"rq:job:{job.id}", "description")
    assert stored is not None and password.encode() not in stored


def test_a_spawned_work_horse_has_no_password_on_its_command_line(
    worker_cli: WorkerCli, password_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RQ's SpawnWorker wrote the connection settings into the horse's `python -c` source,
    which `ps` shows every user of the machine; taskkit passes them in the environment."""
    password = str(password_redis.password)
    registry = use_password_redis(password_redis, worker_cli, monkeypatch)
    job = registry.enqueue("attempt", "spawned", first=2)

    worker = worker_cli.start("run-worker", "-c", CONFIG, "--burst", "--worker-class", "spawn")
    wait_for(lambda: records(registry, "spawned"), what="the spawned horse to start the job")
    horse = records(registry, "spawned")[0]["pid"]
    command_line = Path(f"/proc/{horse}/cmdline").read_bytes()
    assert worker.wait(timeout=60) == 0, worker_cli.stderr(worker)

    assert b"taskkit.worker.spawn" in command_line, command_line
    assert password.encode() not in command_line
    assert status(registry, job) == JobStatus.FINISHED  # it reached the server all the same


def dump(server: PrivateRedis) -> dict[bytes, bytes]:
    """Every key in the server and a flat rendering of its value, whatever its type."""
    conn = server.client()
    found: dict[bytes, bytes] = {}
    for key in conn.scan_iter(count=1000):
        kind = conn.type(key)
        if kind == b"string":
            value: object = conn.get(key)
        elif kind == b"hash":
            value = conn.hgetall(key)
        elif kind == b"list":
            value = conn.lrange(key, 0, -1)
        elif kind == b"set":
            value = conn.smembers(key)
        elif kind == b"zset":
            value = conn.zrange(key, 0, -1)
        else:
            value = conn.xrange(key)
        found[key] = repr(value).encode()
    conn.close()
    return found
