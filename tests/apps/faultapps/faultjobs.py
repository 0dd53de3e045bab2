"""Jobs for the fault tests: each run records itself in Redis, so a test can see every run.

A run appends ``{"pid", "ppid", "start"}`` to ``faults:runs:TAG`` when it starts and
``{"pid", "end"}`` to ``faults:ends:TAG`` when it ends (time.time() seconds), on the
Redis of ``$REDIS_URL``, which the test's workers get.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def attempt(tag: str, first: float = 0.0, later: float = 0.0) -> int:
    """Record the run; sleep ``first`` seconds on the first attempt, ``later`` after."""
    conn = _redis()
    number = int(conn.incr(f"faults:attempts:{tag}"))
    start = {"pid": os.getpid(), "ppid": os.getppid(), "start": time.time(), "attempt": number}
    conn.rpush(f"faults:runs:{tag}", json.dumps(start))
    time.sleep(first if number == 1 else later)
    conn.rpush(f"faults:ends:{tag}", json.dumps({"pid": os.getpid(), "end": time.time()}))
    return number


def hold(tag: str, release: str) -> int:
    """Record the run, wait until the file ``release`` exists (at most 2 min), then end.

    The test decides when the job ends, whatever the load on the machine. The end is
    marked in a file ``RELEASE.ended.N`` first (Redis may be away), then in Redis.
    """
    conn = _redis()
    number = int(conn.incr(f"faults:attempts:{tag}"))
    start = {"pid": os.getpid(), "ppid": os.getppid(), "start": time.time(), "attempt": number}
    conn.rpush(f"faults:runs:{tag}", json.dumps(start))
    deadline = time.monotonic() + 120
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(f"{release}.ended.{number}", "w", encoding="ascii") as ended:
        ended.write(str(time.time()))
    conn.rpush(f"faults:ends:{tag}", json.dumps({"pid": os.getpid(), "end": time.time()}))
    return number


def noop() -> None:
    """Nothing: a job to show the worker went on."""


def refuse_url(url: str) -> None:
    """Fail without quoting ``url``: what taskkit shows of the call must hide its password."""
    raise ValueError("cannot use that URL")


def records(tag: str, kind: str = "runs") -> list[dict[str, Any]]:
    """The runs (or ends) a tag recorded so far."""
    return [json.loads(item) for item in _redis().lrange(f"faults:{kind}:{tag}", 0, -1)]


def record_tick() -> None:
    """Append this run's schedule tick to the file ``$TICK_LOG``: a Redis restarted
    without persistence forgets everything, a file does not."""
    from rq import get_current_job

    job = get_current_job()
    tick = job.meta.get("taskkit_tick") if job is not None else None
    with open(os.environ["TICK_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{tick} {os.getpid()}\n")  # one short append: whole lines, across processes
