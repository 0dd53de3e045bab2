"""Jobs for the operations tests (status, failed, dev, logs, URL forms, interop).

They talk to Redis through the running job's own connection, so a test controls them
with plain keys on its database: a job blocks until a key is set, or fails while a flag
is missing.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from rq import get_current_job

WAIT_LIMIT = 60.0
"""Seconds a blocking job waits for its key before giving up (a test went wrong)."""


def _connection() -> redis.Redis:
    job = get_current_job()
    assert job is not None, "opsjobs run inside an RQ job"
    return job.connection


def ping(value: Any = "pong") -> Any:
    """Return ``value``."""
    return value


def block_until(key: str) -> str:
    """Mark ``<key>:running``, then wait until ``key`` exists in Redis."""
    conn = _connection()
    conn.set(f"{key}:running", os.getpid())
    deadline = time.monotonic() + WAIT_LIMIT
    while not conn.exists(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody set {key!r} within {WAIT_LIMIT:g} s")
        time.sleep(0.02)
    return "released"


def needs_flag(flag: str, password: str = "", token: str = "", user: str = "") -> str:
    """Fail while the Redis key ``flag`` is missing; succeed once it is set."""
    if not _connection().exists(flag):
        raise RuntimeError(f"flag {flag} is not set")
    return f"done for {user}"


def login(user: str, password: str, api_key: str = "") -> None:
    """Always fail, carelessly quoting the password; secrets must never be shown."""
    raise PermissionError(f"login refused for {user} with password {password!r}")


def fail_first_time(marker: str) -> str:
    """Fail the first time (per ``marker``), succeed afterwards."""
    if _connection().incr(marker) == 1:
        raise RuntimeError("first attempt fails")
    return "second time lucky"


def report_progress(key: str, fail: bool = False) -> str:
    """Report half way, wait until ``key`` exists in Redis, then report done (or fail)."""
    import taskkit

    taskkit.progress(0.5, "half way")
    conn = _connection()
    conn.set(f"{key}:running", os.getpid())
    deadline = time.monotonic() + WAIT_LIMIT
    while not conn.exists(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody set {key!r} within {WAIT_LIMIT:g} s")
        time.sleep(0.02)
    if fail:
        raise RuntimeError("failed after half way")
    taskkit.progress(1.0, "done")
    return "done"


def count_with_progress(total: int) -> str | None:
    """Report progress ``total`` times; return the id of the job get_current_job() sees."""
    import taskkit

    for step in range(1, total + 1):
        taskkit.progress(step / total, f"{step} of {total}")
    job = get_current_job()
    return job.id if job is not None else None
