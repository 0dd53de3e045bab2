"""How late a real ``taskkit run-scheduler`` fires, and what syncing many schedules costs.

Two measurements, on a private ``redis-server`` started for the run (or ``--redis-url``,
which must point at an empty database; it is flushed afterwards):

1. **Fire lateness.** A ``taskkit run-scheduler`` process at its default interval (1 s)
   runs a few ``every: 1s`` schedules for ``--duration`` seconds. For every job it
   enqueued, lateness = RQ's ``enqueued_at`` minus the tick's nominal time (the job's
   ``taskkit_tick`` meta). Reports p50, p99 and max, and any tick enqueued twice or
   missing. Target: p99 <= 1 s.
2. **Sync cost.** A jobs.yaml with ``--sync-count`` schedules (every and cron, several
   timezones, with kwargs): the first sync (everything created) and a second one
   (nothing to do), each with its wall time, Redis round trips (counted in the client)
   and commands (counted by the server).

Run ``python benchmarks/bench_schedules.py`` (about 25 s) or ``--quick`` (a few seconds,
for CI smoke tests; its numbers mean little). ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.connection
import yaml

from taskkit.redis_server import EmbeddedRedis, redact_url
from taskkit.registry import load
from taskkit.schedules import SCHEDULER_KEY_PREFIX, sync

TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]
JOB_MODULE = '"""Jobs for bench_schedules.py."""\n\n\ndef noop(n: int = 0) -> int:\n    return n\n'
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with ExitStack() as stack:
        url = args.redis_url or stack.enter_context(EmbeddedRedis()).url
        conn = redis.Redis.from_url(url)
        if conn.dbsize():
            sys.exit(
                f"{redact_url(url)} is not empty; give an empty database (it is flushed after)"
            )
        stack.callback(conn.flushdb)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sched-")))
        (folder / "benchjobs.py").write_text(JOB_MODULE)
        print(f"redis: {redact_url(url)}")

        lateness = measure_lateness(folder, url, args.schedules, args.duration)
        conn.flushdb()
        sync_cost = measure_sync(folder, url, conn, args.sync_count)
        report = {"lateness": lateness, "sync": sync_cost, "quick": args.quick}
        _print(report)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--redis-url", help="an empty database to use (default: a private server)")
    parser.add_argument("--duration", type=float, help="seconds the scheduler runs [20]")
    parser.add_argument("--schedules", type=int, help="every: 1s schedules it fires [5]")
    parser.add_argument("--sync-count", type=int, help="schedules in the sync test [1000]")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    quick = args.quick
    args.duration = args.duration or (3.0 if quick else 20.0)
    args.schedules = args.schedules or (2 if quick else 5)
    args.sync_count = args.sync_count or (100 if quick else 1000)
    return args


def write_config(folder: Path, url: str, schedules: dict[str, Any]) -> Path:
    path = folder / "jobs.yaml"
    data = {
        "version": 1,
        "pythonpath": ["."],
        "redis": {"url": url},
        "jobs": {"noop": {"func": "benchjobs:noop"}},
        "schedules": schedules,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- fire lateness -------------------------------------------------------------------------


def measure_lateness(folder: Path, url: str, count: int, duration: float) -> dict[str, Any]:
    """Run a real run-scheduler; lateness of each enqueued job against its nominal tick."""
    # overlap: allow, because no worker runs: with skip, queued runs would hold ticks back.
    schedules = {
        f"pulse-{i}": {"job": "noop", "every": "1s", "overlap": "allow"} for i in range(count)
    }
    path = write_config(folder, url, schedules)
    conn = redis.Redis.from_url(url)
    command = [*TASKKIT, "run-scheduler", "-c", str(path), "--log-level", "WARNING"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_scheduler(conn, process)
        time.sleep(duration)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    if process.returncode != 0:
        sys.exit(f"run-scheduler exited with {process.returncode}:\n{output}")

    registry = load(path, cached=False)
    jobs = registry.queue("default").get_jobs()
    late_ms: list[float] = []
    per_schedule: dict[str, Counter[str]] = {name: Counter() for name in schedules}
    for job in jobs:
        nominal = datetime.fromisoformat(job.meta["taskkit_tick"])
        enqueued = job.enqueued_at
        assert enqueued is not None, f"job {job.id} has no enqueued_at"
        if enqueued.tzinfo is None:  # older RQ versions store naive UTC
            enqueued = enqueued.replace(tzinfo=UTC)
        late_ms.append((enqueued - nominal).total_seconds() * 1000)
        per_schedule[job.meta["taskkit_schedule"]][job.meta["taskkit_tick"]] += 1
    duplicates = sum(n - 1 for ticks in per_schedule.values() for n in ticks.values() if n > 1)
    missing = sum(_gaps(ticks) for ticks in per_schedule.values())
    return {
        "schedules": count,
        "seconds": duration,
        "jobs": len(jobs),
        "p50_ms": _percentile(late_ms, 0.50),
        "p99_ms": _percentile(late_ms, 0.99),
        "max_ms": max(late_ms, default=math.nan),
        "duplicates": duplicates,
        "missing": missing,
    }


def _wait_for_scheduler(conn: redis.Redis, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not any(conn.scan_iter(f"{SCHEDULER_KEY_PREFIX}*")):
        if process.poll() is not None or time.monotonic() > deadline:
            output = (
                process.communicate(timeout=5)[0].decode() if process.poll() is not None else ""
            )
            sys.exit(f"run-scheduler did not start:\n{output}")
        time.sleep(0.05)


def _gaps(ticks: Counter[str]) -> int:
    """Seconds missing between a schedule's first and last tick."""
    if not ticks:
        return 0
    seconds = sorted(int(datetime.fromisoformat(t).timestamp()) for t in ticks)
    return seconds[-1] - seconds[0] + 1 - len(seconds)


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# -- sync cost -----------------------------------------------------------------------------


def measure_sync(folder: Path, url: str, conn: redis.Redis, count: int) -> dict[str, Any]:
    """First sync of ``count`` schedules, then a second one with nothing to do."""
    schedules: dict[str, Any] = {}
    for i in range(count):
        if i % 2:
            form: dict[str, Any] = {"every": f"{1 + i % 59}m"}
        else:
            form = {"cron": f"{i % 60} {i % 24} * * *", "timezone": ZONES[i % len(ZONES)]}
        schedules[f"schedule-{i:04d}"] = {"job": "noop", **form, "kwargs": {"n": i}}
    path = write_config(folder, url, schedules)
    started = time.perf_counter()
    registry = load(path, cached=False)
    load_s = time.perf_counter() - started
    registry.connection.ping()  # connect outside the measurement
    results: dict[str, Any] = {"schedules": count, "load_s": load_s}
    for label in ("first", "noop"):
        with _counting(conn) as counts:
            started = time.perf_counter()
            changes = sync(registry)
            counts["seconds"] = time.perf_counter() - started
        actions = Counter(change.action for change in changes)
        results[label] = {**counts, "changes": dict(actions)}
    return results


@contextmanager
def _counting(conn: redis.Redis) -> Iterator[dict[str, Any]]:
    """Round trips sent by this process, and commands the server ran, inside the block."""
    counts: dict[str, Any] = {}
    original = redis.connection.AbstractConnection.send_packed_command
    sent = 0

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        nonlocal sent
        sent += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    before = int(conn.info("stats")["total_commands_processed"])
    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    after = int(conn.info("stats")["total_commands_processed"])
    counts["round_trips"] = sent
    counts["commands"] = after - before - 1  # the first INFO counts itself in "after"


# -- report --------------------------------------------------------------------------------


def _print(report: dict[str, Any]) -> None:
    late = report["lateness"]
    print(
        f"\nfire lateness: run-scheduler --interval 1, {late['schedules']} x every: 1s, "
        f"{late['seconds']:.0f} s, {late['jobs']} jobs"
    )
    print(
        f"  p50 {late['p50_ms']:.1f} ms   p99 {late['p99_ms']:.1f} ms   max {late['max_ms']:.1f} ms"
    )
    print(f"  ticks enqueued twice: {late['duplicates']}   ticks missing: {late['missing']}")
    target = "met" if late["p99_ms"] <= 1000 else "MISSED"
    print(f"  target p99 <= 1 s: {target}")
    cost = report["sync"]
    print(f"\nsync of {cost['schedules']} schedules (loading jobs.yaml: {cost['load_s']:.2f} s)")
    for label, title in (("first", "first sync"), ("noop", "second sync (no-op)")):
        run = cost[label]
        print(
            f"  {title:<20} {run['seconds'] * 1000:8.1f} ms  {run['round_trips']:4d} round trips  "
            f"{run['commands']:6d} commands  {run['changes']}"
        )
    if report["quick"]:
        print("\n(--quick: short run, figures are indicative only)")


if __name__ == "__main__":
    sys.exit(main())
