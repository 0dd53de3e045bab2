"""Helpers for the operations tests: a jobs.yaml of opsjobs, private Redis servers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest
import redis
from worker_support import TESTS, wait_for

OPS_APPS = TESTS / "apps"

OPS_JOBS = """\
version: 1
pythonpath: [{apps}]
redis:
  url: {url}
queues:
  high: {{}}
  default: {{}}
jobs:
  ping: {{func: "opsjobs:ping"}}
  block_until: {{func: "opsjobs:block_until"}}
  needs_flag: {{func: "opsjobs:needs_flag"}}
  login: {{func: "opsjobs:login", queue: high}}
  fail_first_time: {{func: "opsjobs:fail_first_time"}}
{extra_jobs}schedules:
  hourly-ping:
    job: ping
    every: 1h
    kwargs: {{value: scheduled}}
"""


def write_jobs_yaml(
    directory: Path, *, url: str = "${REDIS_URL}", extra_jobs: str = "", name: str = "jobs.yaml"
) -> Path:
    """A jobs.yaml in ``directory`` whose jobs are tests/apps/opsjobs.py's."""
    path = directory / name
    path.write_text(
        OPS_JOBS.format(apps=OPS_APPS, url=url, extra_jobs=extra_jobs), encoding="utf-8"
    )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("these tests start their own redis-server processes; none is on PATH")
    return binary


class RedisProcess:
    """A private ``redis-server ARGS`` (TLS, sentinel, passwords), stopped on exit.

    ``ready`` is called until it returns true (or the process dies).
    """

    def __init__(self, args: list[str], ready: Callable[[], bool], workdir: Path) -> None:
        self.args = args
        self.ready = ready
        self.workdir = workdir
        self.log = workdir / f"redis-{len(list(workdir.glob('redis-*.log')))}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [redis_server_binary(), *self.args],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._up, what=f"redis-server {' '.join(self.args)}")
        return self

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"redis-server exited: {self.log.read_text(errors='replace')[-2000:]}")
        try:
            return self.ready()
        except (redis.RedisError, OSError):
            return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def plain_server_args(port: int, *extra: str) -> list[str]:
    """A redis-server on 127.0.0.1:``port`` that saves nothing."""
    return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]


def pings(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        client = redis.Redis.from_url(url, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    return ready


def cli_env(**variables: str) -> dict[str, str]:
    """This environment without taskkit's variables, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKKIT_")}
    env.pop("REDIS_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(variables)
    return env


def poll(condition: Callable[[], object], timeout: float = 60, what: str = "") -> None:
    """Like worker_support.wait_for, with a slower pace for subprocess polling."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.2)
