"""Fixtures of the fault tests: the fault jobs' registry, a ledger database, private Redis."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_support import FAULT_JOBS, PrivateRedis


@pytest.fixture(autouse=True)
def ledger_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ledger app's SQLite file with its table, in this test's tmp_path (workers
    inherit the variable)."""
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE entry (id INTEGER PRIMARY KEY, key VARCHAR(64) NOT NULL UNIQUE, "
            "pid INTEGER NOT NULL)"
        )
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{path}")
    return path


@pytest.fixture
def taskkit_config_path() -> Path:
    """The fault jobs, instead of the probes."""
    return FAULT_JOBS


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server with an append-only file, which the test may crash and restart."""
    server = PrivateRedis(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server that requires a password."""
    server = PrivateRedis(tmp_path / "redis-pw", password="s3cret-Pa55-word")
    server.start()
    yield server
    server.stop()
