"""Shared fixtures: tests run against a real Redis, on a database of their own.

The Redis machinery lives in the ``taskkit.testing`` pytest plugin (the one users of
taskkit enable too); see its docstring for the rules. In short: no test is skipped for
want of Redis, and no one else's data is touched.

- The server is ``$TASKKIT_TEST_REDIS_URL`` if set (it must answer); else
  ``redis://127.0.0.1:6379`` if it answers; else a private ``redis-server`` started for
  the session (:class:`taskkit.redis_server.EmbeddedRedis`).
- The session takes the highest *empty* database from 15 down to 1 that no other
  taskkit test session holds; database 0 is never used.
- ``redis_url`` and ``redis_conn`` flush that database (only that one) before and
  after each test.
- Tests that stop or restart Redis use ``embedded_redis``: a server of their own.

Every test also gets the payments example's environment pointed at its own tmp_path
(database, factory and teardown logs), so no test ever writes next to the example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ops_support import write_jobs_yaml
from worker_support import PROBE_JOBS, WorkerCli

from taskkit.redis_server import EmbeddedRedis
from taskkit.registry import Registry, load

pytest_plugins = ["taskkit.testing"]


@pytest.fixture
def redis_url(taskkit_redis_url: str) -> str:
    """The URL of this session's own database, empty at the start of the test."""
    return taskkit_redis_url


@pytest.fixture
def redis_conn(taskkit_redis: redis.Redis) -> redis.Redis:
    """A ``redis.Redis`` (bytes responses, as RQ wants) on :func:`redis_url`."""
    return taskkit_redis


@pytest.fixture
def embedded_redis() -> Iterator[EmbeddedRedis]:
    """A private redis-server for this test alone, free to stop and restart."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(autouse=True)
def _payments_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the payments example's database and logs inside this test's tmp_path."""
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", f"sqlite:///{tmp_path / 'payments.sqlite'}")
    monkeypatch.setenv("PAYMENTS_FACTORY_LOG", str(tmp_path / "factory.log"))
    monkeypatch.setenv("PAYMENTS_TEARDOWN_LOG", str(tmp_path / "teardown.log"))


# -- registries and workers for the worker tests ---------------------------------------------


@pytest.fixture
def taskkit_config_path() -> Path:
    """The jobs.yaml of the plugin's fixtures: the probes; parametrize to change it."""
    return PROBE_JOBS


@pytest.fixture
def taskkit_registry(
    taskkit_config_path: Path, taskkit_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Registry]:
    """A fresh (uncached) registry on the test database, so each test builds its own app.

    Overrides the plugin's fixture, which shares the per-process registry as an app would.
    """
    monkeypatch.setenv("REDIS_URL", taskkit_redis_url)
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    registry = load(taskkit_config_path, cached=False)
    yield registry
    registry.connection.close()


@pytest.fixture
def worker_cli(redis_url: str, tmp_path: Path) -> Iterator[WorkerCli]:
    """Run ``taskkit`` subprocesses on the test Redis; started ones are killed at the end."""
    cli = WorkerCli(redis_url, tmp_path)
    yield cli
    cli.close()


# -- the operations commands' app (tests/apps/opsapps) -----------------------------------------


@pytest.fixture
def ops_config(tmp_path: Path) -> Path:
    """A jobs.yaml of the operations app in ``tmp_path``, on ``$REDIS_URL``."""
    return write_jobs_yaml(tmp_path)


@pytest.fixture
def ops(ops_config: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The operations app's registry on this test's database."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("TASKKIT_REDIS_URL", raising=False)
    return load(ops_config, cached=False)
