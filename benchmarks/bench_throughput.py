"""Throughput: taskkit app-context no-op jobs against bare RQ no-op jobs.

Both sides run the same function (``payments.jobs.noop``) from the same queue with the
same worker class and the JSON serializer, each in a worker subprocess of its own:

- taskkit: ``taskkit run-worker --burst --queues default`` on the example's jobs.yaml,
  where ``noop`` runs in a fresh app context of the worker's app (pushed and popped per
  job, teardown handlers included) and logs its one line per job;
- bare RQ: an RQ worker of the same class with logging at WARNING (so it does less
  logging than taskkit does), no Flask at all, and the job module imported before it
  starts (as taskkit does; ``rq worker`` would import it in every forked horse).

Variants alternate (ABBA...) and each runs ``--repeat`` times; the medians and their
ratio are printed. Throughput comes from RQ's own job timestamps (``started_at`` of
the first job to ``ended_at`` of the last), so process start-up and app building are
not counted.

Run from the repository root::

    python benchmarks/bench_throughput.py            # the full run (a few minutes)
    python benchmarks/bench_throughput.py --quick    # a smoke run (seconds)

The Redis server is ``--redis-url`` / ``$TASKKIT_TEST_REDIS_URL``, else a local one on
6379, else a private redis-server; the benchmark uses an empty database (15 down to 1)
and flushes only that one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

REPO_ROOT = Path(__file__).resolve().parents[1]
JOBS_YAML = REPO_ROOT / "jobs.yaml"
NOOP = "payments.jobs.noop"
VARIANTS = ("taskkit", "bare-rq")
TARGET = {"simple": 0.95}


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures."""

    jobs: dict[str, int]  # per worker class
    repeat: int
    worker_classes: tuple[str, ...]


FULL = Settings(jobs={"simple": 1000, "fork": 300}, repeat=5, worker_classes=("simple", "fork"))
QUICK = Settings(jobs={"simple": 40, "fork": 10}, repeat=1, worker_classes=("simple", "fork"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table; exit 1 if a job did not finish."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few jobs, one repetition")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per variant")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per measurement")
    parser.add_argument("--worker-class", choices=["simple", "fork"], action="append")
    parser.add_argument("--redis-url", default=os.environ.get("TASKKIT_TEST_REDIS_URL"))
    options = parser.parse_args(argv)
    settings = _settings(options)
    with _redis_database(options.redis_url) as url, tempfile.TemporaryDirectory() as tmp:
        env = _environment(url, Path(tmp))
        results = {cls: _measure_class(url, env, cls, settings) for cls in settings.worker_classes}
    _report(results, settings)
    return 0


def _settings(options: argparse.Namespace) -> Settings:
    base = QUICK if options.quick else FULL
    classes = tuple(options.worker_class or base.worker_classes)
    jobs = {cls: options.jobs or base.jobs[cls] for cls in classes}
    return Settings(jobs=jobs, repeat=options.repeat or base.repeat, worker_classes=classes)


def _measure_class(
    url: str, env: dict[str, str], worker_class: str, settings: Settings
) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_number in range(settings.repeat):
        # ABBA: neither variant always runs first (warm caches, a busy neighbour).
        order = VARIANTS if round_number % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            rate = _measure(url, env, variant, worker_class, settings.jobs[worker_class])
            rates[variant].append(rate)
            print(f"  {worker_class:6} {variant:8} {rate:8.1f} jobs/s", file=sys.stderr)
    return rates


def _measure(url: str, env: dict[str, str], variant: str, worker_class: str, count: int) -> float:
    """Jobs per second between the first job's start and the last job's end."""
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    ids = _enqueue(conn, variant, count)
    done = subprocess.run(
        _worker_command(variant, worker_class, url),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    jobs = [job for job in Job.fetch_many(ids, connection=conn, serializer=JSONSerializer) if job]
    unfinished = [job.id for job in jobs if job.get_status() != JobStatus.FINISHED]
    if len(jobs) != count or unfinished:
        raise SystemExit(f"{variant}: {len(unfinished)} of {count} jobs did not finish")
    first = min(job.started_at for job in jobs if job.started_at)
    last = max(job.ended_at for job in jobs if job.ended_at)
    conn.flushdb()
    conn.close()
    return count / (last - first).total_seconds()


def _enqueue(conn: redis.Redis, variant: str, count: int) -> list[str]:
    if variant == "taskkit":
        import taskkit

        registry = taskkit.load(JOBS_YAML, cached=False)
        registry.connection = conn
        registry.eager = False
        jobs = registry.enqueue_many([("noop", (), {})] * count)
    else:
        queue = Queue("default", connection=conn, serializer=JSONSerializer)
        jobs = queue.enqueue_many([Queue.prepare_data(NOOP) for _ in range(count)])
    return [job.id for job in jobs]


def _worker_command(variant: str, worker_class: str, url: str) -> list[str]:
    if variant == "taskkit":
        script = Path(sys.executable).parent / "taskkit"
        taskkit = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-c", "from taskkit.cli import main; main()"]
        )
        return [
            *taskkit,
            "run-worker",
            "-c",
            str(JOBS_YAML),
            "--burst",
            "--queues",
            "default",
            "--worker-class",
            worker_class,
        ]
    # Bare RQ at its best: the job module imported before the worker starts (``rq worker``
    # itself would import it in every forked horse: DESIGN §8, "fork and import time").
    worker = "SimpleWorker" if worker_class == "simple" else "Worker"
    code = (
        "import sys, redis, payments.jobs\n"
        f"from rq import {worker} as W\n"
        "from rq.serializers import JSONSerializer\n"
        "W(['default'], connection=redis.Redis.from_url(sys.argv[1]), serializer=JSONSerializer)"
        ".work(burst=True, with_scheduler=True, logging_level='WARNING')\n"
    )
    return [sys.executable, "-c", code, url]


def _environment(url: str, tmp: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAYMENTS_")}
    env.pop("TASKKIT_CONFIG", None)
    env.pop("TASKKIT_EAGER", None)
    env["REDIS_URL"] = url
    env["PAYMENTS_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite'}"
    # The same import path for both workers: the example's package, as jobs.yaml sets it.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT / "examples"), env.get("PYTHONPATH")])
    )
    os.environ["REDIS_URL"] = url  # for taskkit.load() in this process
    return env


@contextmanager
def _redis_database(url: str | None) -> Iterator[str]:
    """An empty database on the chosen server, flushed again at the end."""
    from taskkit.redis_server import EmbeddedRedis
    from taskkit.testing import redis_server_choice

    server_url = url or redis_server_choice()[0]
    if server_url is None:
        with EmbeddedRedis() as server, _claimed(server.url) as claimed:
            yield claimed
        return
    with _claimed(server_url) as claimed:
        yield claimed


@contextmanager
def _claimed(server_url: str) -> Iterator[str]:
    from taskkit.testing import claim_empty_database

    url, claim = claim_empty_database(server_url)
    try:
        yield url
    finally:
        claim.flushdb()
        claim.close()


def _report(results: dict[str, dict[str, list[float]]], settings: Settings) -> None:
    print()
    print(
        f"{'worker':8} {'jobs':>6} {'taskkit/s':>10} {'bare RQ/s':>10} "
        f"{'ratio':>7} {'paired':>7}  {'paired range':>13}  runs"
    )
    for worker_class, rates in results.items():
        taskkit_rate = statistics.median(rates["taskkit"])
        bare_rate = statistics.median(rates["bare-rq"])
        ratio = taskkit_rate / bare_rate
        # Each round ran both variants back to back: their ratio cancels slow drifts.
        paired = [t / b for t, b in zip(rates["taskkit"], rates["bare-rq"], strict=True)]
        target = TARGET.get(worker_class)
        verdict = ""
        if target is not None:
            verdict = " target met" if statistics.median(paired) >= target else f" BELOW {target}"
        print(
            f"{worker_class:8} {settings.jobs[worker_class]:>6} {taskkit_rate:>10.1f} "
            f"{bare_rate:>10.1f} {ratio:>6.3f}x {statistics.median(paired):>6.3f}x  "
            f"{min(paired):>5.3f}-{max(paired):.3f}x  {settings.repeat}{verdict}"
        )
    print(
        "\njobs/s: medians of the repetitions, from RQ's job timestamps (start-up excluded);"
        "\nratio: of the medians; paired: median of the per-round ratios (the target's measure)"
    )


if __name__ == "__main__":
    sys.exit(main())
