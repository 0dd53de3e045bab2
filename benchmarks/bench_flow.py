"""The per-job cost of each flow-control key: a no-op job with and without it, side by side.

One long-lived ``taskkit run-worker`` (simple worker, context none) per variant, each on
its own database, fed alternating batches of ``bench_jobs:noop_n`` calls with distinct
arguments (so unique keys differ). The limits are set far above what a batch reaches, so
what is measured is what each key costs, not the limit holding jobs back. Worker
throughput comes from RQ's job timestamps (start-up and enqueueing excluded); the
enqueue time per job is the driver's wall time around ``enqueue_many`` (which sends a
batch with one of these keys job by job). ``enqueue: after_commit`` outside a transaction
costs a look for an app context and nothing else; it is not a worker-side cost.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import BENCHMARKS, EXAMPLES, Section, median, ratio_text, taskkit_command
from runners import Runner, Variant

KEYS: dict[str, str] = {
    "no keys": "",
    "unique": '    unique: {key: "n:{n}"}\n',
    "concurrency": "    concurrency: {key: bench, limit: 100000}\n",
    "rate_limit": "    rate_limit: {key: bench, limit: 100000, per: 1s}\n",
}
"""Each variant's job: its flow keys (jobs.yaml lines)."""


def write_jobs_yaml(folder: Path) -> Path:
    """A jobs.yaml with one no-op job per variant."""
    jobs = "".join(
        f"  {_job(name)}:\n    func: bench_jobs:noop_n\n    context: none\n{lines}"
        for name, lines in KEYS.items()
    )
    path = folder / "flow-jobs.yaml"
    path.write_text(
        "# Written by benchmarks/bench_flow.py for one benchmark run.\n"
        "version: 1\n"
        f'pythonpath: ["{EXAMPLES}", "{BENCHMARKS}"]\n'
        "redis:\n  url: ${REDIS_URL}\n"
        "queues:\n  default: {}\n"
        f"jobs:\n{jobs}",
        encoding="utf-8",
    )
    return path


def _job(variant: str) -> str:
    return "noop_" + variant.replace(" ", "_")


@dataclass
class _Feeder:
    """Enqueues a variant's job with fresh arguments, timing each enqueue_many."""

    jobs_yaml: Path
    job: str
    numbers: Any = field(default_factory=itertools.count)
    registries: list[Any] = field(default_factory=list)
    seconds_per_job: list[float] = field(default_factory=list)

    def __call__(self, conn: Any, count: int) -> list[str]:
        import taskkit

        if not self.registries:
            self.registries.append(taskkit.load(self.jobs_yaml, cached=False))
        registry = self.registries[0]
        registry.connection = conn
        registry.eager = False
        calls = [(self.job, (), {"n": next(self.numbers)}) for _ in range(count)]
        started = time.perf_counter()
        ids = [job.id for job in registry.enqueue_many(calls)]
        self.seconds_per_job.append((time.perf_counter() - started) / count)
        return ids


def variants(jobs_yaml: Path, batch: int, warmup: int = 20) -> list[Variant]:
    """A simple-worker runner per variant of :data:`KEYS`."""
    command = taskkit_command(
        "run-worker", "-c", str(jobs_yaml), "--queues", "default", "--worker-class", "simple"
    )
    made = []
    for name in KEYS:
        feeder = _Feeder(jobs_yaml, _job(name))
        made.append(Variant(name, command, feeder, batch=batch, warmup=warmup))
    return made


def section(rates: dict[str, list[float]], runners: list[Runner], rounds: int) -> Section:
    """Section 10 of the report."""
    part = Section("11. Flow-control keys: per-job cost (simple worker, no-op job)")
    base = rates["no keys"]
    base_enqueue = _enqueue_ms(runners, "no keys")
    rows = []
    for name, values in rates.items():
        ratios = [b / v for v, b in zip(values, base, strict=True)]
        worker_ms = 1000 / median(values) - 1000 / median(base)
        enqueue_ms = _enqueue_ms(runners, name)
        rows.append(
            [
                name,
                f"{median(values):.0f}",
                "-" if name == "no keys" else ratio_text(median(ratios)),
                "-" if name == "no keys" else f"{worker_ms:+.2f}",
                f"{enqueue_ms:.2f}",
                "-" if name == "no keys" else f"{enqueue_ms - base_enqueue:+.2f}",
            ]
        )
    batch = runners[0].variant.batch
    part.say(
        f"{rounds} alternating rounds of {batch} jobs per variant; medians. Worker ms/job: "
        "the difference of the median time per job from the job without keys."
    )
    part.table(
        (
            "job",
            "worker jobs/s",
            "time/job vs no keys",
            "worker ms/job",
            "enqueue ms/job",
            "enqueue ms/job vs no keys",
        ),
        rows,
    )
    return part


def _enqueue_ms(runners: list[Runner], name: str) -> float:
    runner = next(r for r in runners if r.variant.name == name)
    feeder: Callable[..., Any] = runner.variant.enqueue
    return 1000 * median(getattr(feeder, "seconds_per_job", []))
