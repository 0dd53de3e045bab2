"""Where a forked work horse's time goes: taskkit's against bare RQ's, phase by phase.

A work horse is a ``fork()`` of the worker: every page of memory it writes to first
costs it a copy-on-write page fault, so code that runs in a fresh horse is much slower
than the same code in a warm process (on this kind of VM a minor fault costs several
microseconds). This profiler runs an in-process fork worker per variant and, in each
horse, counts minor page faults (``getrusage``) and time per phase:

- ``at-fork hooks``: from the fork to RQ's ``main_work_horse`` (the ``os.register_at_fork``
  hooks: random's reseed, logging's lock re-init, taskkit's database-pool disposal);
- ``horse set-up``: ``main_work_horse`` up to ``perform_job``;
- ``perform``: RQ's ``perform_job`` (Redis bookkeeping, the job);
- inside it, taskkit's ``context`` (the app context pushed and popped around the job) and
  ``log line`` (the one INFO line per job);
- ``horse CPU``: user + system time of the whole horse (``wait4``), noisy on a shared
  machine; the fault counts are close to deterministic.

Variants: ``bare RQ`` (RQ's Worker, the job module imported, no Flask), ``taskkit``
(``make_worker(..., "fork")`` after ``prepare_process``, as ``taskkit run-worker`` runs),
and a what-if without the at-fork
hook for the app's database pools (``fork_hygiene=False``): what the hook still costs
now that it leaves pools holding no connection alone (it rebuilt every pool in every
horse before, ~300 faults / 1.8 ms).

    python benchmarks/profile_fork.py [--jobs 150] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from common import NOOP, Section, redis_server, worker_environment, write_jobs_yaml

VARIANTS = {
    "bare RQ": "RQ's Worker, no Flask",
    "taskkit": "as `taskkit run-worker --worker-class fork` runs",
    "taskkit, no at-fork pool disposal": "what-if: `prepare_process(fork_hygiene=False)`",
}
PHASES = ("hooks", "setup", "perform", "context", "log")


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _Probe:
    """Marks in the horse, written to a file descriptor opened before the fork."""

    def __init__(self, path: Path) -> None:
        self.worker_pid = os.getpid()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
        self.marks: dict[str, tuple[int, float]] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = (_faults(), time.perf_counter())

    def span(self, name: str, start: str, end: str) -> None:
        if os.getpid() == self.worker_pid:
            return  # the worker's own work (e.g. the line it logs for a horse): not a horse's
        (f0, t0), (f1, t1) = self.marks[start], self.marks[end]
        os.write(self.fd, f"{name} {f1 - f0} {(t1 - t0) * 1e6:.0f}\n".encode())


def child(variant: str, url: str, jobs: int, out: Path) -> None:
    """Run ``jobs`` no-op jobs with a fork worker of ``variant`` in this process."""
    probe = _Probe(out.with_suffix(".phases"))
    # Registered before anything else imports, so it runs first in the child.
    os.register_at_fork(after_in_child=lambda: probe.mark("fork"))
    import redis
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    conn = redis.Redis.from_url(url)
    conn.flushdb()
    if variant == "bare RQ":
        import payments.jobs  # noqa: F401 -- imported before the fork, as taskkit does

        base: type[Any] = Worker
        queue = Queue("default", connection=conn, serializer=JSONSerializer)
        queue.enqueue_many([Queue.prepare_data(NOOP)] * jobs)
        options: dict[str, Any] = {"serializer": JSONSerializer}
    else:
        base, options = _taskkit(variant, conn, jobs, probe)

    class Profiled(base):  # type: ignore[misc,valid-type]
        cpu: ClassVar[list[float]] = []
        faults: ClassVar[list[int]] = []

        def main_work_horse(self, job: Any, queue: Any) -> None:
            probe.mark("setup")
            perform = self.perform_job

            def timed(*args: Any) -> Any:
                probe.mark("perform")
                try:
                    return perform(*args)
                finally:
                    probe.mark("end")
                    probe.span("hooks", "fork", "setup")
                    probe.span("setup", "setup", "perform")
                    probe.span("perform", "perform", "end")

            self.perform_job = timed
            super().main_work_horse(job, queue)

        def wait_for_horse(self) -> Any:
            pid, status, usage = os.wait4(self.horse_pid, 0)
            self.cpu.append((usage.ru_utime + usage.ru_stime) * 1000)
            self.faults.append(usage.ru_minflt)
            return pid, status, usage

    worker = Profiled(["default"], connection=conn, **options)
    worker.work(burst=True, logging_level="WARNING")
    skip = min(5, jobs // 5)  # the first horses warm up the worker itself
    result: dict[str, Any] = {
        "cpu_ms": statistics.median(Profiled.cpu[skip:]),
        "faults": statistics.median(Profiled.faults[skip:]),
    }
    rows: dict[str, list[tuple[int, int]]] = {}
    for line in out.with_suffix(".phases").read_text().splitlines():
        name, faults, micros = line.split()
        rows.setdefault(name, []).append((int(faults), int(micros)))
    for name, values in rows.items():
        kept = values[skip:]
        result[name] = (
            statistics.median(v[0] for v in kept),
            statistics.median(v[1] for v in kept),
        )
    out.write_text(json.dumps(result))


def _taskkit(variant: str, conn: Any, jobs: int, probe: _Probe) -> tuple[type[Any], dict[str, Any]]:
    import logging

    import taskkit
    from taskkit.logs import setup_logging
    from taskkit.worker import WORKER_CLASSES, TaskkitJob, joblog, prepare_process

    registry = taskkit.load(os.environ["TASKKIT_CONFIG"], cached=False)
    registry.connection = conn
    registry.eager = False
    registry.enqueue_many([("noop", (), {})] * jobs)
    setup_logging("INFO")
    logging.getLogger().handlers[0].stream = open("worker.log", "a")  # noqa: SIM115
    prepare_process(registry, fork_hygiene=variant != "taskkit, no at-fork pool disposal")
    call, info = registry.call, joblog.log.info

    def timed_call(*args: Any) -> Any:
        probe.mark("c0")
        try:
            return call(*args)
        finally:
            probe.mark("c1")
            probe.span("context", "c0", "c1")

    def timed_info(*args: Any, **kwargs: Any) -> None:
        probe.mark("l0")
        info(*args, **kwargs)
        probe.mark("l1")
        probe.span("log", "l0", "l1")

    registry.call = timed_call  # type: ignore[method-assign]
    joblog.log.info = timed_info  # type: ignore[method-assign]
    options = {
        "job_class": TaskkitJob,
        "queue_class": __import__("rq").Queue,
        "serializer": registry.serializer,
    }
    return WORKER_CLASSES["fork"], options


def profile(server_url: str, jobs: int, rounds: int, folder: Path) -> dict[str, dict[str, Any]]:
    """Run every variant ``rounds`` times (alternating); medians per variant."""
    from common import database, flush

    url = database(server_url, 14)
    env = worker_environment(url, folder)
    env["TASKKIT_CONFIG"] = str(write_jobs_yaml(folder))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    try:
        for round_number in range(rounds):
            for name in names if round_number % 2 == 0 else names[::-1]:
                out = folder / "profile.json"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", name, url, str(jobs), str(out)],
                    env=env,
                    cwd=folder,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"profile of {name} failed:\n{done.stderr[-3000:]}")
                runs[name].append(json.loads(out.read_text()))
    finally:
        flush(url)
    return {name: _medians(results) for name, results in runs.items()}


def _medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results if key in r]
        if isinstance(values[0], list):
            merged[key] = [statistics.median(v[i] for v in values) for i in range(2)]
        else:
            merged[key] = statistics.median(values)
    return merged


def section(results: dict[str, dict[str, Any]], jobs: int, rounds: int) -> Section:
    """The profile as a report section."""
    part = Section("Profile: one fork work horse, phase by phase (minor faults / microseconds)")

    def cell(result: dict[str, Any], phase: str) -> str:
        if phase not in result:
            return "-"
        faults, micros = result[phase]
        return f"{faults:.0f} / {micros:.0f}"

    rows = [
        [
            f"{name} ({VARIANTS[name]})",
            f"{result['faults']:.0f}",
            f"{result['cpu_ms']:.1f}",
            *(cell(result, phase) for phase in PHASES),
        ]
        for name, result in results.items()
    ]
    part.table(
        [
            "variant",
            "horse faults",
            "horse CPU ms",
            "at-fork hooks",
            "horse set-up",
            "perform",
            "taskkit: context",
            "taskkit: log line",
        ],
        rows,
    )
    part.say(
        f"Medians over {jobs} horses x {rounds} runs per variant "
        "(benchmarks/profile_fork.py). Each page a fresh horse writes to first costs a "
        "copy-on-write fault; that, not the Python work, is most of what a step costs in "
        "a horse."
    )
    return part


def main(argv: list[str] | None = None) -> int:
    """Print the profile (or, with ``--child``, run one variant: internal)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        child(args[1], args[2], int(args[3]), Path(args[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=150, help="horses per run [150]")
    parser.add_argument("--rounds", type=int, default=2, help="runs per variant [2]")
    parser.add_argument("--redis-url", help="a server with an empty database 14")
    options = parser.parse_args(args)
    with redis_server(options.redis_url) as server, tempfile.TemporaryDirectory() as tmp:
        results = profile(server, options.jobs, options.rounds, Path(tmp))
    print("\n".join(section(results, options.jobs, options.rounds).lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
