"""Four workers on one queue: every one of 2,000 jobs runs exactly once.

Each job inserts a row with its own unique key into a SQLite table (the ledger app,
Flask-SQLAlchemy, WAL): a job run twice would fail on the unique key and land in the
failed registry; a job never run would leave its row missing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from fault_support import CONFIG
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from worker_support import WorkerCli

from taskkit import Registry

pytestmark = pytest.mark.slow

JOBS = 2000


def test_four_workers_run_each_of_2000_jobs_exactly_once(
    worker_cli: WorkerCli, taskkit_registry: Registry, ledger_database: Path
) -> None:
    for start in range(0, JOBS, 500):
        batch = [("record_entry", (f"job-{n}",), {}) for n in range(start, start + 500)]
        taskkit_registry.enqueue_many(batch)
    classes = ["fork", "fork", "simple", "simple"]  # both kinds compete for the same queue

    began = time.monotonic()
    workers = [
        worker_cli.start("run-worker", "-c", CONFIG, "--burst", "--worker-class", name)
        for name in classes
    ]
    codes = [process.wait(timeout=110) for process in workers]
    took = time.monotonic() - began

    print(f"\n4 workers ran {JOBS} jobs in {took:.1f}s")
    assert codes == [0, 0, 0, 0], [worker_cli.stderr(p)[-2000:] for p in workers]
    conn = taskkit_registry.connection
    assert FailedJobRegistry("default", connection=conn).count == 0
    assert FinishedJobRegistry("default", connection=conn).count == JOBS
    with sqlite3.connect(ledger_database) as db:
        rows, keys, pids = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT key), COUNT(DISTINCT pid) FROM entry"
        ).fetchone()
    assert rows == keys == JOBS
    assert pids > 4, "the fork workers' jobs ran in work horses, one per job"
    per_worker = [
        line for p in workers for line in worker_cli.stderr(p).splitlines() if " ok" in line
    ]
    assert len(per_worker) == JOBS, "one 'ok' line per job, across the four workers"
