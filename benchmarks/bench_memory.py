"""Worker memory: resident set size after 100 jobs and along the way to many more.

The long-lived runners of the throughput measurement (:mod:`runners`) are reused: their
``VmRSS`` (``/proc/PID/status``) is read after the 100-job warm-up, then they are fed
more no-op jobs, all at once in threads (memory, unlike time, does not suffer from the
runners sharing the machine), with readings along the way, until each has run its
total. Bare RQ's workers run alongside as the yardstick. For a fork worker the figure is
the worker process's (the parent's); its horses exit after each job.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from common import Section, Target
from runners import Runner

# Growth allowed between the first and the last reading: "no growth beyond noise".
NOISE_KIB = 2048

Readings = list[tuple[int, int]]  # (jobs run, VmRSS KiB)


def top_up(
    runners: dict[str, Runner], totals: dict[str, int], step: int = 500, readings: int = 5
) -> dict[str, Readings]:
    """Run jobs on each runner until it ran ``totals[name]``; RSS readings on the way."""

    def feed(name: str) -> Readings:
        runner = runners[name]
        taken = [(runner.variant.warmup, runner.rss_after_warmup_kib)]
        total = runner.variant.warmup + sum(batch.jobs for batch in runner.batches)
        every = max(step, totals[name] // readings)
        next_reading = total + every
        while total < totals[name]:
            count = min(step, totals[name] - total)
            runner.run(count)
            total += count
            if total >= next_reading or total >= totals[name]:
                taken.append((total, runner.rss_kib()))
                next_reading = total + every
        return taken

    with ThreadPoolExecutor(len(runners)) as pool:
        futures = {name: pool.submit(feed, name) for name in runners}
        return {name: future.result() for name, future in futures.items()}


def section(readings: dict[str, Readings]) -> Section:
    """Section 9 of the report."""
    part = Section("9. Memory: worker RSS after 100 jobs and after many more")
    rows = []
    for name, values in readings.items():
        (first_jobs, first), (last_jobs, last) = values[0], values[-1]
        growth = last - first
        along = ", ".join(f"{jobs:,}: {(kib - first) / 1024:+.2f}" for jobs, kib in values[1:-1])
        rows.append(
            [
                name,
                f"{first / 1024:.1f} MiB after {first_jobs}",
                along or "-",
                f"{last / 1024:.1f} MiB after {last_jobs:,}",
                f"{growth / 1024:+.2f} MiB",
            ]
        )
        if name.startswith("taskkit"):
            part.targets.append(
                Target(
                    f"RSS growth, {name} worker, {first_jobs} to {last_jobs:,} jobs",
                    f"{growth / 1024:+.2f} MiB",
                    f"< {NOISE_KIB / 1024:.0f} MiB",
                    growth < NOISE_KIB,
                )
            )
    part.table(
        ["worker", "first reading", "growth along the way (jobs: MiB)", "last reading", "growth"],
        rows,
    )
    part.say(
        "VmRSS of the worker process (for fork: the parent); jobs are no-ops in an app "
        f'context. "No growth beyond noise" is read as less than {NOISE_KIB // 1024} MiB. '
        "Bare RQ's forking worker grows by about 100 bytes per job once malloc's slack is "
        "used up (a few thousand jobs): its `Worker.fork_work_horse` sets "
        "`os.environ['RQ_JOB_ID']` (and `RQ_WORKER_ID`) in the parent for every job, and "
        "glibc's `setenv` never frees the string it replaces (~95 bytes per assignment "
        "measured here): ~100 MB per million jobs. taskkit's sets them in the work horse "
        "only."
    )
    return part
