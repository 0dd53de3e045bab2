"""A small Flask-SQLAlchemy app: a ledger table with a unique key, on a SQLite file.

``$LEDGER_DATABASE_URL`` names the database. Jobs write entries (a second run of the same
job would break the unique key) and report, into Redis, what they saw of the session,
the connection pool and the Flask context, so tests can check the hygiene of a worker
after many jobs.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from flask import Flask, has_app_context
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, event
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()
POOL_SIZE = 5


class Entry(db.Model):  # type: ignore[name-defined,misc]
    """One ledger line; ``key`` is unique, so a job that ran twice fails."""

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    pid: Mapped[int]


def create_app() -> Flask:
    """The ledger app. Its table is created by the tests (tests/faults/conftest.py):
    four workers starting at once would race to create it."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["LEDGER_DATABASE_URL"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_size": POOL_SIZE,
        "max_overflow": 0,
        "pool_timeout": 5,
        "connect_args": {"timeout": 30},
    }
    db.init_app(app)
    with app.app_context():
        event.listen(db.engine, "connect", _wal)
    return app


def _wal(dbapi_connection: Any, record: Any) -> None:
    # Four worker processes write at once: WAL lets readers and one writer overlap.
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


_KEEP_MAX = (
    "if tonumber(redis.call('get', KEYS[1]) or 0) < tonumber(ARGV[1]) then "
    "redis.call('set', KEYS[1], ARGV[1]) end"
)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def record_entry(key: str) -> int:
    """Insert the entry ``key``; raises IntegrityError if it is there already."""
    db.session.add(Entry(key=key, pid=os.getpid()))
    db.session.commit()
    return os.getpid()


def work(number: int) -> None:
    """Use the database, note the pool's checked-out count; odd numbers then raise."""
    conn = _redis()
    db.session.add(Entry(key=f"work-{number}", pid=os.getpid()))
    db.session.flush()  # holds a connection, in a transaction, until the session ends
    in_use = db.engine.pool.checkedout()
    conn.eval(_KEEP_MAX, 1, "ledger:max_checked_out", in_use)
    if number % 2:
        raise RuntimeError(f"job {number} fails after writing")
    db.session.commit()


def probe() -> dict[str, Any]:
    """Run with context: none after a ``work`` job: what did that job leave behind?"""
    sessions = len(db.session.registry.registry)
    engine = next(iter(db._app_engines.values()))[None]  # the worker's app's one engine
    state = {
        "app_context": has_app_context(),
        "sessions": sessions,
        "checked_out": engine.pool.checkedout(),
        "pid": os.getpid(),
    }
    conn = _redis()
    if state["app_context"] or sessions or state["checked_out"]:
        conn.rpush("ledger:leaks", repr(state))
    conn.incr("ledger:probes")
    return state


def create_app_slowly() -> Flask:
    """The ledger app after a long start (a factory that connects to slow services):
    writes ``$LEDGER_STARTING_MARKER`` first, so a test knows the factory runs."""
    import time
    from pathlib import Path

    Path(os.environ["LEDGER_STARTING_MARKER"]).touch()
    time.sleep(60)
    return create_app()


def create_app_with_a_thread() -> Flask:
    """The ledger app, plus a non-daemon thread that never ends (a metrics flusher, a
    scheduler library): the interpreter waits for it when the worker has stopped."""
    import threading
    import time

    threading.Thread(target=lambda: time.sleep(3600), name="never-ends", daemon=False).start()
    return create_app()
