"""Job functions for the schedule tests (tests/test_schedules.py, tests/test_cli_schedules.py).

Loaded through ``pythonpath:`` in the jobs.yaml files those tests write. The functions
that touch Redis use the running job's own connection, so they need no URL of their own.
"""

from __future__ import annotations

import json

from rq import get_current_job

RECORD_KEY = "schedjobs:record"
"""List that :func:`record` appends to."""


def tick(n: int = 0) -> int:
    """Do nothing; return ``n``."""
    return n


def record(value: str = "") -> str:
    """Append the value and the running job's schedule tick to :data:`RECORD_KEY`."""
    job = get_current_job()
    assert job is not None, "record() runs in a worker"
    entry = json.dumps({"value": value, "tick": job.meta.get("taskkit_tick")})
    job.connection.rpush(RECORD_KEY, entry)
    return value


def block(key: str, timeout: float = 20.0) -> bool:
    """Wait until something is pushed to Redis list ``key`` (or ``timeout`` passes)."""
    job = get_current_job()
    assert job is not None, "block() runs in a worker"
    return job.connection.blpop([key], timeout=timeout) is not None
