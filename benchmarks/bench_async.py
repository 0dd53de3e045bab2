"""Per-job cost of an ``async def`` job against a plain one, side by side, in process.

A coroutine job gets an event loop of its own (``asyncio.run``) inside its context, so
its extra cost is one loop created and closed per job. This measures that, with no
Redis, through taskkit's own call path (``taskkit.context.run``) under the ``none`` and
``app`` policies::

    python benchmarks/bench_async.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from taskkit.config import AppConfig
from taskkit.context import ProcessApp, run


def sync_noop() -> None:
    """Nothing."""


async def async_noop() -> None:
    """Nothing, as a coroutine."""


def per_call_us(call: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """The median over ``rounds`` of the mean time of one call, in microseconds."""
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            call()
        means.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(means)


def main(n: int = 5000) -> None:
    process_app = ProcessApp(AppConfig(factory="flask:Flask", kwargs={"import_name": "bench"}))
    process_app.adopt(Flask("bench"))
    print(f"{'policy':<8}{'def (µs/job)':>14}{'async def (µs/job)':>20}{'extra (µs)':>12}")
    for policy in ("none", "app"):
        plain = per_call_us(lambda p=policy: run(p, sync_noop, (), {}, process_app), n)
        coro = per_call_us(lambda p=policy: run(p, async_noop, (), {}, process_app), n)
        print(f"{policy:<8}{plain:>14.1f}{coro:>20.1f}{coro - plain:>12.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
