"""Enqueueing: taskkit's ``enqueue`` and ``enqueue_many`` against RQ's ``Queue.enqueue``.

In this process, on a database of its own. Each variant enqueues ``jobs`` no-op jobs;
variants alternate (ABBA...) over the rounds, and the figures are medians of jobs/s.

- ``taskkit enqueue``: ``registry.enqueue("noop")`` once per job (name lookup,
  signature check, JSON check, one pipeline);
- ``taskkit enqueue_many``: one ``registry.enqueue_many`` call for all of them (every
  call checked, then one pipeline for all);
- ``RQ Queue.enqueue``: ``queue.enqueue("payments.jobs.noop", ...)`` with the same
  options taskkit sets (timeout, TTLs, meta), the baseline of the single target;
- ``RQ Queue.enqueue, defaults`` and ``RQ Queue.enqueue_many``: for scale.

Round trips per enqueue are counted too (redis-py, as in bench_roundtrips).

Alone (section 5 of ``benchmarks/run.py`` otherwise)::

    python benchmarks/bench_enqueue.py --jobs 500 --rounds 7   # on a private redis-server
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from common import (
    NOOP,
    Section,
    Target,
    alternating,
    database,
    median,
    ratio_text,
    redis_server,
    write_jobs_yaml,
)
from rq import Queue
from rq.serializers import JSONSerializer

BULK_TARGET = 4.0
SINGLE_TARGET = 0.95


def _variants(conn: redis.Redis, jobs_yaml: Path, jobs: int) -> dict[str, Callable[[], object]]:
    import taskkit

    registry = taskkit.load(jobs_yaml, cached=False)
    registry.connection = conn
    registry.eager = False
    noop = registry.job("noop").settings
    queue = Queue("default", connection=conn, serializer=JSONSerializer)
    same_options = {
        "job_timeout": noop.timeout,
        "result_ttl": noop.result_ttl,
        "failure_ttl": noop.failure_ttl,
        "meta": {"taskkit_job": "noop"},
    }
    calls = [("noop", (), {})] * jobs
    return {
        "taskkit enqueue": lambda: [registry.enqueue("noop") for _ in range(jobs)],
        "taskkit enqueue_many": lambda: registry.enqueue_many(calls),
        "RQ Queue.enqueue": lambda: [queue.enqueue(NOOP, **same_options) for _ in range(jobs)],
        "RQ Queue.enqueue, defaults": lambda: [queue.enqueue(NOOP) for _ in range(jobs)],
        "RQ Queue.enqueue_many": lambda: queue.enqueue_many(
            [Queue.prepare_data(NOOP, **_prepare_options(same_options)) for _ in range(jobs)]
        ),
    }


def _prepare_options(options: dict[str, object]) -> dict[str, object]:
    renamed = dict(options)
    renamed["timeout"] = renamed.pop("job_timeout")
    return renamed


def measure(url: str, jobs_yaml: Path, jobs: int, rounds: int) -> dict[str, list[float]]:
    """Jobs/s of every variant, per round."""
    conn = redis.Redis.from_url(url)
    try:
        variants = _variants(conn, jobs_yaml, jobs)
        for step in variants.values():  # warm up: imports, connection, caches
            step()
        conn.flushdb()
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(rounds):
            for name in alternating(list(variants), round_number):
                started = time.perf_counter()
                variants[name]()
                rates[name].append(jobs / (time.perf_counter() - started))
                conn.flushdb()
        return rates
    finally:
        conn.flushdb()
        conn.close()


def round_trips(url: str, jobs_yaml: Path) -> dict[str, float]:
    """Round trips of one call of each variant for 10 jobs, per job."""
    from bench_roundtrips import Counts, install_counting

    counts = Counts()
    install_counting(counts)
    conn = redis.Redis.from_url(url)
    try:
        variants = _variants(conn, jobs_yaml, 10)
        for step in variants.values():
            step()  # warm up the connection and RQ's version check
        result = {}
        for name, step in variants.items():
            counts.reset()
            step()
            result[name] = counts.round_trips / 10
        return result
    finally:
        conn.flushdb()
        conn.close()


def section(
    rates: dict[str, list[float]], trips: dict[str, float] | None, jobs: int, rounds: int
) -> Section:
    """Section 5 of the report."""
    part = Section("5. Enqueue: single and enqueue_many")
    single = median(rates["taskkit enqueue"])
    rows = [
        [
            name,
            f"{median(values):.0f}",
            f"{1e6 / median(values):.0f}",
            ratio_text(median(values) / single),
            "-" if trips is None else f"{trips[name]:g}",
        ]
        for name, values in rates.items()
    ]
    part.table(["variant", "jobs/s", "us/job", "vs taskkit enqueue", "round trips per job"], rows)
    bulk = [
        m / s for m, s in zip(rates["taskkit enqueue_many"], rates["taskkit enqueue"], strict=True)
    ]
    against_rq = [
        t / r for t, r in zip(rates["taskkit enqueue"], rates["RQ Queue.enqueue"], strict=True)
    ]
    part.say(
        f"{jobs} jobs per measurement, {rounds} alternating rounds, medians; in-process. "
        "Paired ratios (median of per-round ratios): enqueue_many / enqueue "
        f"**{ratio_text(median(bulk))}**; taskkit enqueue / RQ Queue.enqueue with the same "
        f"options **{ratio_text(median(against_rq))}**."
    )
    part.targets.append(
        Target(
            "enqueue_many / single enqueue",
            ratio_text(median(bulk)),
            f">= {BULK_TARGET:.0f}x",
            median(bulk) >= BULK_TARGET,
        )
    )
    part.targets.append(
        Target(
            "taskkit enqueue / RQ Queue.enqueue",
            ratio_text(median(against_rq)),
            f">= {SINGLE_TARGET:.2f}x",
            median(against_rq) >= SINGLE_TARGET,
        )
    )
    return part


def main(argv: list[str] | None = None) -> int:
    """Measure this section alone and print it as markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs per measurement [500]")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds [7]")
    parser.add_argument(
        "--redis-url", help="a server whose database 13 is empty (default: a private one)"
    )
    parser.add_argument("--no-round-trips", action="store_true", help="skip counting them")
    options = parser.parse_args(argv)
    with redis_server(options.redis_url) as server, tempfile.TemporaryDirectory() as tmp:
        # The benchmark jobs.yaml reads ${REDIS_URL}, as in run.py.
        os.environ["REDIS_URL"] = server
        os.environ.pop("TASKKIT_REDIS_URL", None)
        jobs_yaml = write_jobs_yaml(Path(tmp))
        url = database(server, 13)
        rates = measure(url, jobs_yaml, options.jobs, options.rounds)
        trips = None if options.no_round_trips else round_trips(url, jobs_yaml)
    part = section(rates, trips, options.jobs, options.rounds)
    lines = [f"## {part.title}", "", *part.lines]
    lines += [f"- {t.what}: {t.measured} (target {t.target}, {t.verdict})" for t in part.targets]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
