"""Jobs that report the context they ran in, for taskkit's worker tests.

Each returns plain data, stored by RQ as the job's result, so a test can read what the
job saw from Redis whichever process ran it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context, has_request_context, url_for
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

# Importing this module (which the registry does before the app is built) makes every
# new database connection remember the process that opened it.
IMPORTED_IN = os.getpid()


@event.listens_for(Engine, "connect")
def _remember_opener(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info["opened_by"] = os.getpid()


def context_report() -> dict[str, Any]:
    """What Flask context the job runs in, and in which process."""
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "app_context": has_app_context(),
        "request_context": has_request_context(),
        "rq_job_id": os.environ.get("RQ_JOB_ID"),
        "module_imported_in": IMPORTED_IN,
    }
    if has_app_context():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        report["app_name"] = app.name
        report["app_id"] = id(app)
        report["testing"] = app.testing
    if has_request_context():
        report["url"] = url_for("payments.receipt", payment_id=7, _external=True)
    return report


def fail_in_context(reason: str = "boom") -> None:
    """Raise, so that a test can see teardown run after a failure too."""
    raise RuntimeError(reason)


def sleep_then_mark(seconds: float, marker: str) -> int:
    """Sleep, then write this process's pid to ``marker``; returns the pid."""
    time.sleep(seconds)
    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    return os.getpid()


def fail_then_mark(marker: str) -> str:
    """Fail on the first try; on a retry, mark and succeed."""
    path = Path(marker)
    attempts = int(path.read_text(encoding="utf-8")) if path.exists() else 0
    path.write_text(str(attempts + 1), encoding="utf-8")
    if attempts == 0:
        raise RuntimeError("first attempt fails")
    return f"attempt {attempts + 1}"


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the arguments as the worker received them, with their type names."""
    return {
        "args": [repr(a) for a in args],
        "kwargs": {k: repr(v) for k, v in kwargs.items()},
        "types": [type(a).__name__ for a in args],
    }


def database_report() -> dict[str, Any]:
    """Which process opened the database connection this job uses."""
    from payments.db import db

    connection = db.session.connection()
    connection.execute(text("SELECT 1"))
    return {
        "pid": os.getpid(),
        "opened_by": connection.connection.info.get("opened_by"),
        "checked_out": db.engine.pool.checkedout(),
    }


def mark_then_sleep(marker: str, seconds: float) -> int:
    """Write this process's pid to ``marker`` (the job has started), then sleep."""
    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(seconds)
    return os.getpid()


def named_like_internals(job: Any, registry: Any, declared: Any) -> list[Any]:
    """Parameters named as the worker's own: any name must work."""
    return [job, registry, declared]


async def async_report(wait: float = 0.0) -> dict[str, Any]:
    """An ``async def`` job that awaits, then uses current_app and a Flask-SQLAlchemy query."""
    import asyncio

    from payments.db import db

    await asyncio.sleep(wait)
    row = db.session.execute(text("SELECT 41 + 1")).scalar_one()
    report = {
        "pid": os.getpid(),
        "app_name": current_app.name,
        "query": row,
        "request_context": has_request_context(),
    }
    if has_request_context():
        report["url"] = url_for("payments.receipt", payment_id=7, _external=True)
    return report


def _raise_if_asked(exc: BaseException | None) -> None:
    from flask import g

    if g.pop("raise_in_teardown", None) is not None:
        raise RuntimeError("teardown broke")


def return_then_break_teardown(marker: str) -> str:
    """Succeed, leaving a teardown handler that raises; count the runs in ``marker``."""
    from flask import g

    path = Path(marker)
    path.write_text(str(int(path.read_text() or 0) + 1 if path.exists() else 1))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if _raise_if_asked not in app.teardown_appcontext_funcs:
        app.teardown_appcontext(_raise_if_asked)
    g.raise_in_teardown = True
    return "done"


def always_fails(reason: str = "no luck") -> None:
    """Fail every time."""
    raise ValueError(reason)
