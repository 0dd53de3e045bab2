"""Throughput of no-op jobs: taskkit against bare RQ, the seed's pattern and Flask-RQ 1.0.

Part of the suite (``python benchmarks/run.py``); see that file for the command line.

Every variant is a long-lived worker process on a database of its own
(:mod:`runners`), all started before the first measurement. Then, round after round,
each variant runs one batch of jobs, in alternating order (ABBA...), and a batch's
throughput comes from RQ's own job timestamps (first ``started_at`` to last
``ended_at``), so start-up is not counted. The figures are medians over the rounds;
the headline ratio of two variants is the median of their per-round ratios, since the
two batches of a round ran seconds apart and share whatever the machine was doing then.

- ``taskkit simple``/``fork``: ``taskkit run-worker --worker-class simple|fork`` on a
  jobs.yaml whose ``noop`` (``payments.jobs.noop``) runs in a fresh app context of the
  payments app, teardown handlers included, and logs its line;
- ``bare RQ simple``/``fork``: RQ's SimpleWorker/Worker running the same function with
  no Flask at all (see :func:`runners.bare_rq_variant`);
- ``seed simple``: a bare RQ SimpleWorker running a job that calls the app factory and
  pushes and pops a context itself (:func:`bench_jobs.seed_noop`);
- ``Flask-RQ``: ``flask rq worker`` of Flask-RQ 1.0 on the same app, which starts a new
  ``flask rq work-horse`` process (a fresh interpreter that loads the app) per job.
  Because its cost is that start-up, it is also timed as whole processes: ``--burst``
  workers of both tools from start to exit for the same number of jobs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import redis
from common import (
    PYTHON,
    Section,
    Target,
    alternating,
    database,
    flush,
    median,
    ratio_text,
    worker_environment,
)
from rq import Queue
from rq.serializers import JSONSerializer
from runners import (
    Runner,
    Variant,
    bare_rq_variant,
    flask_rq_variant,
    taskkit_variant,
)

TARGETS = {"simple": 0.95, "fork": 0.90}
FLASK_RQ_TARGETS = {"simple": 50.0, "fork": 10.0}
SEED_TARGET = 3.0


@dataclass(frozen=True)
class Settings:
    """Sizes of the throughput measurements."""

    rounds: int
    simple_jobs: int
    fork_jobs: int
    seed_jobs: int
    flask_rq_jobs: int
    warmup: int
    whole_process_jobs: int
    whole_process_rounds: int
    flask_rq: bool  # measure Flask-RQ (when it is installed)


def flask_rq_available() -> bool:
    """Whether Flask-RQ can be imported (``pip install -e '.[bench]'``)."""
    return importlib.util.find_spec("flask_rq") is not None


def variants(jobs_yaml: Path, settings: Settings, *, seed: bool, flask_rq: bool) -> list[Variant]:
    """The variants to run, with their batch sizes."""
    chosen = [
        replace(
            taskkit_variant("taskkit simple", jobs_yaml, "simple"),
            batch=settings.simple_jobs,
            warmup=settings.warmup,
        ),
        replace(
            bare_rq_variant("bare RQ simple", "simple"),
            batch=settings.simple_jobs,
            warmup=settings.warmup,
        ),
        replace(
            taskkit_variant("taskkit fork", jobs_yaml, "fork"),
            batch=settings.fork_jobs,
            warmup=settings.warmup,
        ),
        replace(
            bare_rq_variant("bare RQ fork", "fork"),
            batch=settings.fork_jobs,
            warmup=settings.warmup,
        ),
    ]
    if seed:
        seed_variant = bare_rq_variant("seed simple", "simple", func="bench_jobs.seed_noop")
        chosen.append(replace(seed_variant, batch=settings.seed_jobs, warmup=3))
    if flask_rq:
        chosen.append(replace(flask_rq_variant("Flask-RQ"), batch=settings.flask_rq_jobs, warmup=2))
    return chosen


def measure(runners: Sequence[Runner], rounds: int, log: bool = True) -> dict[str, list[float]]:
    """Run ``rounds`` rounds of one batch per runner, alternating; the rates per variant."""
    rates: dict[str, list[float]] = {runner.variant.name: [] for runner in runners}
    by_name = {runner.variant.name: runner for runner in runners}
    for round_number in range(rounds):
        for name in alternating(list(by_name), round_number):
            runner = by_name[name]
            batch = runner.run(runner.variant.batch)
            rates[name].append(batch.rate)
            if log:
                print(
                    f"  round {round_number + 1}: {name:15} {batch.rate:8.1f} jobs/s",
                    file=sys.stderr,
                    flush=True,
                )
    return rates


def paired(rates: dict[str, list[float]], numerator: str, denominator: str) -> list[float]:
    """Per-round ratios of two variants' rates."""
    return [a / b for a, b in zip(rates[numerator], rates[denominator], strict=True)]


def cpu_per_job(runners: Sequence[Runner]) -> dict[str, list[float]]:
    """CPU milliseconds per job of each runner's measured batches (worker and horses)."""
    return {r.variant.name: [b.cpu_ms_per_job for b in r.batches] for r in runners}


_CONTEXT_COST = """
import json, statistics, sys, time
import bench_jobs, taskkit
registry = taskkit.load(sys.argv[1], cached=False)
declared = registry.job("noop")
registry.process_app.get()
steps = {
    "seed": bench_jobs.seed_noop,
    "taskkit": lambda: registry.call(declared, (), {}),
}
times = {name: [] for name in steps}
for i in range(int(sys.argv[2]) + 1):
    for name in (list(steps) if i % 2 == 0 else list(steps)[::-1]):
        started = time.perf_counter()
        steps[name]()
        if i:
            times[name].append((time.perf_counter() - started) * 1000)
print(json.dumps({name: statistics.median(values) for name, values in times.items()}))
"""


def context_cost(jobs_yaml: Path, env: dict[str, str], calls: int) -> dict[str, float]:
    """Milliseconds per call, in one warm process: the seed's job body against taskkit's.

    ``seed``: :func:`bench_jobs.seed_noop` (factory, push, pop); ``taskkit``: what a
    taskkit worker does around the same no-op (``registry.call``: a fresh context of the
    process's app pushed and popped, teardown handlers run).
    """
    done = subprocess.run(
        [PYTHON, "-c", _CONTEXT_COST, str(jobs_yaml), str(calls)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring the context cost failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def report(
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    settings: Settings,
    context: dict[str, float] | None = None,
) -> list[Section]:
    """Sections 1-3 of the report from the rates of :func:`measure` (and the CPU costs)."""
    sections = [_against_bare_rq(rates, cpu, settings)]
    if "seed simple" in rates:
        sections.append(_against_seed(rates, settings, context))
    return sections


def _against_bare_rq(
    rates: dict[str, list[float]], cpu: dict[str, list[float]], settings: Settings
) -> Section:
    section = Section("1. taskkit app-context no-op jobs vs bare RQ no-op jobs")
    rows = []
    for worker_class in ("simple", "fork"):
        ours, theirs = f"taskkit {worker_class}", f"bare RQ {worker_class}"
        ratios = paired(rates, ours, theirs)
        ratio = median(ratios)
        target = TARGETS[worker_class]
        jobs = settings.simple_jobs if worker_class == "simple" else settings.fork_jobs
        ours_cpu, theirs_cpu = median(cpu[ours]), median(cpu[theirs])
        rows.append(
            [
                worker_class,
                f"{len(ratios)} x {jobs}",
                f"{median(rates[ours]):.1f}",
                f"{median(rates[theirs]):.1f}",
                ratio_text(median(rates[ours]) / median(rates[theirs])),
                f"**{ratio_text(ratio)}** ({min(ratios):.2f}-{max(ratios):.2f})",
                f">= {target:.2f}x",
                f"{ours_cpu:.2f} vs {theirs_cpu:.2f} ({ours_cpu - theirs_cpu:+.2f})",
            ]
        )
        section.targets.append(
            Target(
                f"taskkit / bare RQ, {worker_class} worker",
                ratio_text(ratio),
                f">= {target:.2f}x",
                ratio >= target,
            )
        )
    section.table(
        [
            "worker",
            "rounds x jobs",
            "taskkit jobs/s",
            "bare RQ jobs/s",
            "ratio of medians",
            "paired ratio, median (range)",
            "target",
            "CPU ms/job: taskkit vs bare RQ",
        ],
        rows,
    )
    section.say(
        "jobs/s: medians over the rounds, from RQ's job timestamps (start-up excluded). "
        "Paired ratio: the median of the per-round ratios (the batches of a round ran "
        "back to back), the figure the target is checked against. CPU ms/job: the worker "
        "process's CPU time plus its work horses', per job (median over the rounds; Redis "
        "not included), steadier than wall time on a shared machine."
    )
    return section


def _against_seed(
    rates: dict[str, list[float]], settings: Settings, context: dict[str, float] | None
) -> Section:
    section = Section("3. taskkit vs the seed's pattern (app factory called inside each job)")
    ratios = paired(rates, "taskkit simple", "seed simple")
    ratio = median(ratios)
    section.table(
        ["worker", "taskkit jobs/s", "seed's pattern jobs/s", "paired ratio (range)", "target"],
        [
            [
                f"simple ({len(ratios)} rounds)",
                f"{median(rates['taskkit simple']):.1f}",
                f"{median(rates['seed simple']):.1f} ({settings.seed_jobs} jobs/batch)",
                f"**{ratio_text(ratio)}** ({min(ratios):.1f}-{max(ratios):.1f})",
                f">= {SEED_TARGET:.0f}x",
            ]
        ],
    )
    section.say(
        "The seed's pattern: a bare RQ SimpleWorker whose job function calls "
        "`create_app()` and pushes/pops its context (benchmarks/bench_jobs.py:seed_noop). "
        "The payments factory is small (Flask-SQLAlchemy, one blueprint, `create_all`); "
        "a real app's factory costs more, and the ratio with it."
    )
    if context is not None:
        bare_ms = 1000 / median(rates["bare RQ simple"])
        ceiling = median(paired(rates, "bare RQ simple", "seed simple"))
        section.table(
            ["per job", "ms"],
            [
                [
                    "seed's job body: `create_app()`, push, pop (in a warm process)",
                    f"{context['seed']:.2f}",
                ],
                [
                    "taskkit around the same no-op: push and pop a context of the built app",
                    f"{context['taskkit']:.3f}",
                ],
                [
                    "bare RQ's own cost per no-op job (1 / its SimpleWorker jobs/s above)",
                    f"{bare_ms:.2f}",
                ],
                [
                    "bare RQ running a plain no-op / the seed's pattern (paired, jobs/s)",
                    ratio_text(ceiling),
                ],
            ],
        )
        section.say(
            f"taskkit's per-job context handling costs {context['taskkit'] * 1000:.0f} us "
            f"against the seed's {context['seed']:.1f} ms, "
            f"{context['seed'] / context['taskkit']:.0f}x less; but RQ's own per-job work "
            "(its Redis round trips and bookkeeping: section 4) stays, so a worker that "
            "cost nothing over bare RQ would reach only bare RQ's own ratio to the seed's "
            "pattern (last row). taskkit's worker gets past it by doing less of RQ's "
            "per-job work: 11 fewer Redis round trips per job (section 4)."
        )
    section.targets.append(
        Target(
            "taskkit / seed's pattern, simple worker",
            ratio_text(ratio),
            f">= {SEED_TARGET:.0f}x",
            ratio >= SEED_TARGET,
        )
    )
    return section


# -- Flask-RQ ---------------------------------------------------------------------------------


def flask_rq_section(
    rates: dict[str, list[float]] | None,
    whole: dict[str, list[float]] | None,
    settings: Settings,
    skipped: str | None = None,
) -> Section:
    """Section 2: taskkit against Flask-RQ 1.0's worker."""
    section = Section("2. taskkit vs Flask-RQ 1.0's worker (same app, same no-op)")
    if rates is None or whole is None:
        section.say(f"Skipped: {skipped}")
        for worker_class, target in FLASK_RQ_TARGETS.items():
            section.targets.append(
                Target(
                    f"taskkit {worker_class} / Flask-RQ",
                    "-",
                    f">= {target:.0f}x",
                    None,
                    skipped or "",
                )
            )
        return section
    rows = []
    for worker_class, target in FLASK_RQ_TARGETS.items():
        ours = f"taskkit {worker_class}"
        ratios = paired(rates, ours, "Flask-RQ")
        ratio = median(ratios)
        whole_ratio = median(whole[ours]) / median(whole["Flask-RQ"])
        rows.append(
            [
                worker_class,
                f"{median(rates[ours]):.1f}",
                f"{median(rates['Flask-RQ']):.2f}",
                f"**{ratio_text(ratio)}** ({min(ratios):.0f}-{max(ratios):.0f})",
                f"{median(whole[ours]):.1f} vs {median(whole['Flask-RQ']):.2f}",
                ratio_text(whole_ratio),
                f">= {target:.0f}x",
            ]
        )
        section.targets.append(
            Target(
                f"taskkit {worker_class} / Flask-RQ (jobs/s)",
                ratio_text(ratio),
                f">= {target:.0f}x",
                ratio >= target,
            )
        )
    section.table(
        [
            "taskkit worker",
            "taskkit jobs/s",
            "Flask-RQ jobs/s",
            "paired ratio (range)",
            f"whole process, {settings.whole_process_jobs} jobs: jobs/s",
            "whole-process ratio",
            "target",
        ],
        rows,
    )
    section.say(
        "Flask-RQ 1.0's `flask rq worker` (its `FlaskSubprocessWorker`) starts "
        "`python -m flask ... rq work-horse` for every job: a new interpreter that "
        "imports Flask and the app and calls the factory before it runs the job. Its "
        f"steady rate comes from job timestamps like the others ({settings.flask_rq_jobs} "
        "jobs per batch); the whole-process columns time `--burst` workers of both "
        f"tools from start to exit for {settings.whole_process_jobs} queued jobs each "
        f"(median of {settings.whole_process_rounds}), where taskkit's one-off start-up "
        "(imports, app) weighs in. The target is checked on the jobs/s ratio."
    )
    return section


def whole_process(
    server_url: str, db: int, jobs_yaml: Path, folder: Path, settings: Settings
) -> dict[str, list[float]]:
    """Jobs/s of ``--burst`` workers from process start to exit, alternating."""
    url = database(server_url, db)
    home = folder / "whole-process"
    home.mkdir(exist_ok=True)
    env = worker_environment(url, home)
    taskkit = {
        f"taskkit {cls}": taskkit_variant(f"taskkit {cls}", jobs_yaml, cls)
        for cls in ("simple", "fork")
    }
    variants_ = {**taskkit, "Flask-RQ": flask_rq_variant("Flask-RQ")}
    results: dict[str, list[float]] = {name: [] for name in variants_}
    conn = redis.Redis.from_url(url)
    try:
        for round_number in range(settings.whole_process_rounds):
            for name in alternating(list(variants_), round_number):
                variant = variants_[name]
                variant.enqueue(conn, settings.whole_process_jobs)
                command = [*variant.command, "--burst"]
                started = time.perf_counter()
                done = subprocess.run(
                    command, env=env, cwd=home, capture_output=True, timeout=900, check=False
                )
                seconds = time.perf_counter() - started
                left = Queue("default", connection=conn, serializer=JSONSerializer).count
                if done.returncode != 0 or left:
                    raise RuntimeError(
                        f"{name} --burst failed ({done.returncode}, {left} jobs left):\n"
                        f"{done.stderr.decode(errors='replace')[-3000:]}"
                    )
                rate = settings.whole_process_jobs / seconds
                results[name].append(rate)
                print(f"  whole process: {name:15} {rate:8.2f} jobs/s", file=sys.stderr, flush=True)
                conn.flushdb()
    finally:
        conn.close()
        flush(url)
    return results
