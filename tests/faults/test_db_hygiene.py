"""Database hygiene over many jobs: connections in use stay within the pool, the session
is removed after every job (its failed writes rolled back), and no app context is left.

``ledger_work`` (context: app) writes a row, flushes, records how many connections the
pool has checked out, and raises for odd numbers; ``ledger_probe`` (context: none) runs
after each one and records anything the job before it left behind (an app context, a
session, a checked-out connection).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from rq.registry import FailedJobRegistry

from taskkit import Registry
from taskkit.testing import run_burst_worker

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("worker_class", "jobs"), [("simple", 1000), ("fork", 50)])
def test_connections_sessions_and_contexts_after_many_jobs(
    taskkit_registry: Registry, ledger_database: Path, worker_class: str, jobs: int
) -> None:
    for start in range(0, jobs, 250):
        batch = []
        for number in range(start, min(start + 250, jobs)):
            batch += [("ledger_work", (number,), {}), ("ledger_probe", (), {})]
        taskkit_registry.enqueue_many(batch)

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    conn = taskkit_registry.connection
    assert (run.finished, run.failed) == (jobs // 2 + jobs, jobs // 2)
    assert FailedJobRegistry("default", connection=conn).count == jobs // 2
    assert int(conn.get("ledger:probes") or 0) == jobs
    assert conn.lrange("ledger:leaks", 0, -1) == [], "a job left a context, session or connection"
    assert int(conn.get("ledger:max_checked_out") or 0) == 1, "one connection per job, at most"
    with sqlite3.connect(ledger_database) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM entry").fetchone()
    assert rows == jobs // 2, "the failed jobs' writes were rolled back"
    app = taskkit_registry.process_app.built
    assert app is not None
    engine = app.extensions["sqlalchemy"]._app_engines[app][None]
    assert engine.pool.checkedout() == 0
    assert engine.pool.size() == 5
