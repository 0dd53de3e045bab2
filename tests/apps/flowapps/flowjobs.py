"""Jobs for the flow-control tests: each records what it saw where a test can read it.

Jobs append to a Redis list (``flow:events``) on the test database, whose URL the tests
put in ``$REDIS_URL``, so a test reads what ran in any worker process.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

EVENTS = "flow:events"


class TransientError(Exception):
    """Worth retrying."""


class GoneError(Exception):
    """Never worth retrying."""


NOT_AN_EXCEPTION = 42


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def record(**facts: Any) -> None:
    """Append one event, with this process's clock and the Redis server's."""
    client = _redis()
    seconds, micros = client.time()
    event = {"pid": os.getpid(), "redis_time": seconds + micros / 1e6, **facts}
    client.rpush(EVENTS, json.dumps(event))


def raise_error(kind: str, account_id: int = 0) -> None:
    """Record the attempt, then raise ``kind``."""
    record(job="raise_error", kind=kind)
    errors: dict[str, type[Exception]] = {
        "transient": TransientError,
        "gone": GoneError,
        "value": ValueError,
    }
    raise errors[kind](f"{kind} for {account_id}")


def sync_account(account_id: int, hold: float = 0.0, release_key: str = "") -> int:
    """Record start and end around an optional wait for ``release_key`` to be set."""
    record(job="sync_account", account_id=account_id, edge="start")
    if release_key:
        client = _redis()
        deadline = time.monotonic() + 60
        while not client.exists(release_key) and time.monotonic() < deadline:
            time.sleep(0.02)
    elif hold:
        time.sleep(hold)
    record(job="sync_account", account_id=account_id, edge="end")
    return account_id


def call_api(n: int) -> int:
    """Record a start."""
    record(job="call_api", n=n)
    return n


def send_mail(to: str) -> str:
    """Record a send."""
    record(job="send_mail", to=to)
    return to
