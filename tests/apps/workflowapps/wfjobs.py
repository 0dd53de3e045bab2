"""Jobs for the workflow tests: each records its call in Redis (``$REDIS_URL``)."""

import json
import os
import time

import redis

CALLS = "wf:calls"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def _record(*call: object) -> None:
    _redis().rpush(CALLS, json.dumps([*call, os.getpid()]))


def fetch_shard(day: str, shard: str) -> str:
    """A shard's part; the shard called "bad" fails."""
    if shard == "bad":
        raise ValueError(f"shard {shard} is broken")
    _record("fetch", day, shard)
    return f"{day}/{shard}"


def merge_shards(day: str, parts: list[str | None]) -> str:
    """The parts joined, in the order given."""
    _record("merge", day, parts)
    return "+".join(part or "?" for part in parts)


def notify_ops(day: str) -> str:
    _record("notify", day)
    return f"notified {day}"


def hold(tag: str) -> str:
    """Record this process, then wait until the test sets ``wf:go:TAG`` (60 s at most)."""
    connection = _redis()
    connection.rpush(f"wf:held:{tag}", os.getpid())
    deadline = time.monotonic() + 60
    while not connection.exists(f"wf:go:{tag}"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody set wf:go:{tag}")
        time.sleep(0.05)
    return tag


def count(parts: list[str]) -> int:
    _record("count", parts)
    return len(parts)
