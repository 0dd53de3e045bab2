"""Redis round trips and commands per job: taskkit's worker against bare RQ's, counted.

Deterministic, not timed. A worker runs in a process of its own (``--child``) with
redis-py's connection class patched to count what it sends:

- a **round trip** is one ``send_packed_command`` (one command, or one whole pipeline);
- **commands** are counted as they are packed, by name (MULTI and EXEC included).

A forking worker's work horse counts its own traffic from the fork on and reports it
through a file opened before the fork. The worker runs in burst mode twice: on an
queue of ``--jobs`` no-op jobs and on twice as many; per job = (second - first) / jobs, so
start-up and shutdown cancel out. RQ's scheduler is off for both (it polls on a timer).

Used by the suite (``python benchmarks/run.py``) and by
``tests/test_benchmarks_roundtrips.py``; alone::

    python benchmarks/bench_roundtrips.py --redis-url redis://127.0.0.1:6379/9 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
VARIANTS = ("taskkit", "bare RQ")
WORKER_CLASSES = ("simple", "fork")


class Counts:
    """What this process sent to Redis since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.commands: Counter[str] = Counter()

    def reset(self) -> None:
        self.round_trips = 0
        self.commands = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {"round_trips": self.round_trips, "commands": dict(self.commands)}


def install_counting(counts: Counts) -> None:
    """Patch redis-py's connections (in this process and its forks) to count into ``counts``."""
    from redis.connection import AbstractConnection

    send_packed = AbstractConnection.send_packed_command
    send_command = AbstractConnection.send_command
    pack_commands = AbstractConnection.pack_commands

    def counted_send_packed(self: Any, command: Any, check_health: bool = True) -> Any:
        counts.round_trips += 1
        return send_packed(self, command, check_health)

    def counted_send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.commands[_name(args[0])] += 1
        return send_command(self, *args, **kwargs)

    def counted_pack_commands(self: Any, commands: Any) -> Any:
        commands = list(commands)
        for command in commands:
            counts.commands[_name(command[0])] += 1
        return pack_commands(self, commands)

    AbstractConnection.send_packed_command = counted_send_packed  # type: ignore[method-assign]
    AbstractConnection.send_command = counted_send_command  # type: ignore[method-assign]
    AbstractConnection.pack_commands = counted_pack_commands  # type: ignore[method-assign]


def _name(command: Any) -> str:
    text = command.decode() if isinstance(command, bytes) else str(command)
    return text.split()[0].upper()


def child(variant: str, worker_class: str, url: str, jobs: int, jobs_yaml: str) -> dict[str, Any]:
    """Run one burst worker on ``jobs`` queued no-ops in this process; what it sent."""
    counts = Counts()
    install_counting(counts)
    import redis
    from rq import Queue, SimpleWorker, Worker
    from rq.serializers import JSONSerializer

    conn = redis.Redis.from_url(url)
    conn.flushdb()
    if variant == "taskkit":
        import taskkit
        from taskkit.worker import make_worker, prepare_process

        registry = taskkit.load(jobs_yaml, cached=False)
        registry.connection = conn
        registry.eager = False
        registry.enqueue_many([("noop", (), {})] * jobs)
        prepare_process(registry, fork_hygiene=worker_class == "fork")
        worker: Any = make_worker(registry, ["default"], worker_class)  # type: ignore[arg-type]
    else:
        import payments.jobs  # noqa: F401 -- imported before any fork, as taskkit does

        queue = Queue("default", connection=conn, serializer=JSONSerializer)
        queue.enqueue_many([Queue.prepare_data("payments.jobs.noop")] * jobs)
        cls = SimpleWorker if worker_class == "simple" else Worker
        worker = cls(["default"], connection=conn, serializer=JSONSerializer)
    if worker_class == "fork":
        _count_horses(worker, counts)
    horses = _horse_file(worker)
    counts.reset()  # count the worker only: not the set-up above
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    total = counts.as_dict()
    if horses.exists():
        for line in horses.read_text().splitlines():
            horse = json.loads(line)
            total["round_trips"] += horse["round_trips"]
            total["commands"] = dict(Counter(total["commands"]) + Counter(horse["commands"]))
        horses.unlink()
    return total


def _count_horses(worker: Any, counts: Counts) -> None:
    """Make each work horse of ``worker`` count from its fork on and report at its end."""
    path = Path(tempfile.mkstemp(prefix="horses-", suffix=".jsonl")[1])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.register_at_fork(after_in_child=counts.reset)
    perform = worker.perform_job

    def reported(*args: Any) -> Any:
        try:
            return perform(*args)
        finally:
            os.write(fd, (json.dumps(counts.as_dict()) + "\n").encode())

    worker.perform_job = reported
    worker._taskkit_bench_horses = path


def _horse_file(worker: Any) -> Path:
    return getattr(worker, "_taskkit_bench_horses", Path("/nonexistent"))


def count(
    variant: str, worker_class: str, url: str, jobs: int, *, jobs_yaml: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Run :func:`child` in a fresh process; its counts."""
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__)),
            "--child",
            variant,
            worker_class,
            url,
            str(jobs),
            str(jobs_yaml),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"counting {variant} {worker_class} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def per_job(
    variant: str, worker_class: str, url: str, jobs: int, *, jobs_yaml: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Round trips and commands per job: (run on 2 x ``jobs`` - run on ``jobs``) / ``jobs``."""
    empty = count(variant, worker_class, url, jobs, jobs_yaml=jobs_yaml, env=env)
    full = count(variant, worker_class, url, 2 * jobs, jobs_yaml=jobs_yaml, env=env)
    commands = Counter(full["commands"])
    commands.subtract(empty["commands"])
    return {
        "round_trips": (full["round_trips"] - empty["round_trips"]) / jobs,
        "commands": sum(commands.values()) / jobs,
        "by_command": {name: n / jobs for name, n in sorted(commands.items()) if n},
    }


def measure(url: str, jobs: int, classes: tuple[str, ...] = WORKER_CLASSES) -> dict[str, Any]:
    """Per-job counts of every variant and worker class on the (empty) database ``url``."""
    from common import worker_environment, write_jobs_yaml

    with tempfile.TemporaryDirectory(prefix="taskkit-roundtrips-") as tmp:
        folder = Path(tmp)
        jobs_yaml = write_jobs_yaml(folder)
        env = worker_environment(url, folder)
        return {
            f"{variant} {cls}": per_job(variant, cls, url, jobs, jobs_yaml=jobs_yaml, env=env)
            for cls in classes
            for variant in VARIANTS
        }


def section(results: dict[str, Any], jobs: int) -> Any:
    """Section 4 of the report."""
    from common import Section, Target

    part = Section("4. Redis round trips and commands per job (counted, not timed)")
    rows = []
    for cls in WORKER_CLASSES:
        ours, theirs = results.get(f"taskkit {cls}"), results.get(f"bare RQ {cls}")
        if ours is None or theirs is None:
            continue
        extra = {
            name: ours["by_command"].get(name, 0) - theirs["by_command"].get(name, 0)
            for name in set(ours["by_command"]) | set(theirs["by_command"])
        }
        diff = ", ".join(f"{k} {v:+g}" for k, v in sorted(extra.items()) if v) or "none"
        rows.append(
            [
                cls,
                f"{ours['round_trips']:g}",
                f"{theirs['round_trips']:g}",
                f"{ours['commands']:g}",
                f"{theirs['commands']:g}",
                diff,
            ]
        )
        part.targets.append(
            Target(
                f"round trips per job, {cls} worker: taskkit vs bare RQ",
                f"{ours['round_trips']:g} vs {theirs['round_trips']:g}",
                "no more than bare RQ",
                ours["round_trips"] <= theirs["round_trips"],
            )
        )
    part.table(
        [
            "worker",
            "taskkit round trips",
            "bare RQ round trips",
            "taskkit commands",
            "bare RQ commands",
            "taskkit - bare RQ, by command",
        ],
        rows,
    )
    sample = results.get("bare RQ simple")
    if sample:
        listed = ", ".join(f"{k} {v:g}" for k, v in sample["by_command"].items())
        part.say(f"A bare RQ SimpleWorker's no-op job, by command: {listed}.")
    part.say(
        f"Per job = (burst run on {2 * jobs} jobs - burst run on {jobs}) / {jobs}, counted in "
        "redis-py (benchmarks/bench_roundtrips.py); a forking worker's horses included. "
        "RQ's scheduler is off in both (it polls on a timer)."
    )
    return part


def main(argv: list[str] | None = None) -> int:
    """Print the per-job counts (``--json``: as JSON)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        variant, worker_class, url, jobs, jobs_yaml = args[1:6]
        print(json.dumps(child(variant, worker_class, url, int(jobs), jobs_yaml)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", required=True, help="an empty database (flushed)")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--worker-class", choices=WORKER_CLASSES, action="append")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args(args)
    sys.path.insert(0, str(BENCHMARKS))
    results = measure(
        options.redis_url, options.jobs, tuple(options.worker_class or WORKER_CLASSES)
    )
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(section(results, options.jobs).lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
