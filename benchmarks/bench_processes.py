"""``taskkit run-worker --processes 2`` against ``--processes 1`` on this machine.

Both are long-lived runners (:mod:`runners`) fed alternating batches of ``hash_work``
jobs (:func:`bench_jobs.hash_work`, about 2 ms of SHA-256 per job), throughput from
RQ's job timestamps. Not a pure no-op: with no-op jobs, a simple worker spends a fifth
of each job's time waiting on Redis, and Redis is one single-threaded process sharing the
same two cores, so the figure would measure Redis rather than the pool; a small real job
is what a pool is for.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from common import Section, Target, median, ratio_text
from runners import Runner, Variant, taskkit_variant

TARGET = 1.6


def variants(jobs_yaml: Path, classes: tuple[str, ...], batch: dict[str, int]) -> list[Variant]:
    """A one-process and a two-process runner per worker class."""
    chosen = []
    for cls in classes:
        for processes in (1, 2):
            variant = taskkit_variant(
                f"{cls} x{processes}", jobs_yaml, cls, job="hash_work", processes=processes
            )
            chosen.append(replace(variant, batch=batch[cls], warmup=20))
    return chosen


def section(rates: dict[str, list[float]], runners: list[Runner], rounds: int) -> Section:
    """Section 8 of the report."""
    part = Section("8. --processes 2 vs 1 (2 cores)")
    rows = []
    batches = {runner.variant.name: runner.variant.batch for runner in runners}
    busy = {r.variant.name: median([b.machine_busy for b in r.batches]) for r in runners}
    for cls in sorted({name.split()[0] for name in rates}):
        one, two = rates[f"{cls} x1"], rates[f"{cls} x2"]
        ratios = [b / a for a, b in zip(one, two, strict=True)]
        ratio = median(ratios)
        rows.append(
            [
                cls,
                f"{rounds} x {batches[f'{cls} x1']}",
                f"{median(one):.1f}",
                f"{median(two):.1f}",
                f"**{ratio_text(ratio)}** ({min(ratios):.2f}-{max(ratios):.2f})",
                f">= {TARGET}x",
                f"{busy[f'{cls} x1']:.2f} / {busy[f'{cls} x2']:.2f}",
            ]
        )
        part.targets.append(
            Target(
                f"--processes 2 / 1, {cls} worker, hash_work jobs",
                ratio_text(ratio),
                f">= {TARGET}x",
                ratio >= TARGET,
            )
        )
    part.table(
        [
            "worker",
            "rounds x jobs",
            "1 process jobs/s",
            "2 processes jobs/s",
            "paired ratio",
            "target",
            "machine busy, cores (1 / 2 processes)",
        ],
        rows,
    )
    part.say(
        "Job: `hash_work` (2,000 SHA-256 digests, ~2 ms of CPU): with pure no-ops the single "
        "Redis process, on the same two cores, takes a large share of each job's time, "
        "and the figure would measure Redis rather than the pool. Machine busy: how many "
        "of the 2 cores were in use during the batches (median; every process on the "
        "machine, ours included: `/proc/stat`). One worker process with its Redis uses "
        "about 1.1-1.3; where the 1-process batches already saw much more, something "
        "else held the second core and the pool had nothing to scale onto."
    )
    return part
