"""What a workflow costs: starting a run, each step, and a fan-in over many items.

On a private ``redis-server`` started for the run (or ``--redis-url``: an empty database,
flushed afterwards; server-wide command counts then include other clients). One
``taskkit run-worker --worker-class simple`` process works everything, and the variants
alternate (ABBA) over the rounds, so the figures are ratios measured side by side:

1. **Start latency.** ``registry.start_workflow`` of a fan-out of ``--items`` items (plus
   its fan-in), against ``registry.enqueue_many`` of as many plain jobs: wall time in
   this process, and round trips counted in redis-py.
2. **Per-step overhead.** A chain of ``--steps`` no-op steps against as many plain no-op
   jobs, worked by the same worker: from the first job's start to the last one's end,
   as RQ stamped them (the worker's start-up is not in it). For scale, the same chain
   made by hand with RQ's ``depends_on``: what RQ's dependencies cost by themselves.
3. **Fan-in.** A fan-out of ``--items`` no-op items and its fan-in, against as many
   plain no-op jobs: the same span, and the Redis commands the server ran for it (all,
   and the ``HGET`` of job statuses RQ's dependency check sends), per item.

Run ``python benchmarks/bench_workflows.py`` (about a minute), or ``--quick`` (seconds,
for the smoke test; its figures mean little). ``--json FILE`` writes the figures. Section
10 of ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import redis.connection
import yaml
from rq import Queue
from rq.serializers import JSONSerializer

from taskkit.redis_server import EmbeddedRedis, redact_url
from taskkit.registry import Registry, load
from taskkit.workflows.runs import WorkflowRun

TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]
JOB_MODULE = '''"""Jobs for bench_workflows.py."""


def noop(item: object = None) -> None:
    return None


def collect(parts: list[object]) -> int:
    return len(parts)
'''


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
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-wf-")))
        print(f"redis: {redact_url(url)}", file=sys.stderr)
        figures = measure(folder, url, items=args.items, steps=args.steps, rounds=args.rounds)
        figures["quick"] = args.quick
        print(render(figures))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, for smoke tests")
    parser.add_argument("--redis-url", help="an empty database to use (default: a private server)")
    parser.add_argument("--items", type=int, help="items of the fan-out [100]")
    parser.add_argument("--steps", type=int, help="steps of the chain [50]")
    parser.add_argument("--rounds", type=int, help="alternating rounds [5]")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.items = args.items or (10 if args.quick else 100)
    args.steps = args.steps or (5 if args.quick else 50)
    args.rounds = args.rounds or (1 if args.quick else 5)
    return args


def write_config(folder: Path, url: str, steps: int) -> Path:
    """The jobs.yaml: a no-op job, a fan-out with its fan-in, and a chain of ``steps``."""
    (folder / "benchwf.py").write_text(JOB_MODULE)
    chain: dict[str, Any] = {"s000": {"job": "noop"}}
    for n in range(1, steps):
        chain[f"s{n:03d}"] = {"job": "noop", "after": [f"s{n - 1:03d}"]}
    data = {
        "version": 1,
        "pythonpath": ["."],
        "redis": {"url": url},
        "defaults": {"context": "none"},
        "jobs": {"noop": {"func": "benchwf:noop"}, "collect": {"func": "benchwf:collect"}},
        "workflows": {
            "fan": {
                "inputs": ["items"],
                "steps": {
                    "each": {"job": "noop", "each": "item", "in": "items"},
                    "join": {"job": "collect", "after": ["each"], "results": "parts"},
                },
            },
            "chain": {"steps": chain},
        },
    }
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def measure(folder: Path, url: str, *, items: int, steps: int, rounds: int) -> dict[str, Any]:
    """Every figure of the module docstring, ``rounds`` alternating rounds each."""
    path = write_config(folder, url, steps)
    registry = load(path, cached=False)
    registry.eager = False
    registry.connection.ping()
    figures: dict[str, Any] = {"items": items, "steps": steps, "rounds": rounds}
    figures["start"] = measure_start(registry, items, rounds)
    registry.connection.flushdb()
    with _worker(path, url, registry):
        figures["chain"] = measure_chain(registry, steps, rounds)
        figures["fan_in"] = measure_fan_in(registry, items, rounds)
    return figures


# -- 1. start latency -----------------------------------------------------------------------


def measure_start(registry: Registry, items: int, rounds: int) -> dict[str, Any]:
    """start_workflow of a fan-out of ``items`` against enqueue_many of as many jobs."""
    values = list(range(items))
    variants: dict[str, Callable[[], object]] = {
        "workflow": lambda: registry.start_workflow("fan", items=values),
        "plain": lambda: registry.enqueue_many([("noop", (), {"item": i}) for i in values]),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    trips: dict[str, int] = {}
    for number in range(rounds):
        for name in _abba(list(variants), number):
            with _counting() as counted:
                started = time.perf_counter()
                variants[name]()
                seconds[name].append(time.perf_counter() - started)
            trips[name] = counted["round_trips"]
            registry.connection.flushdb()
    workflow_ms = statistics.median(seconds["workflow"]) * 1000
    plain_ms = statistics.median(seconds["plain"]) * 1000
    return {
        "workflow_ms": workflow_ms,
        "plain_ms": plain_ms,
        "ratio": workflow_ms / plain_ms,
        "workflow_round_trips": trips["workflow"],
        "plain_round_trips": trips["plain"],
    }


# -- 2. per-step overhead -------------------------------------------------------------------


def measure_chain(registry: Registry, steps: int, rounds: int) -> dict[str, Any]:
    """A chain of ``steps`` no-op steps against ``steps`` plain no-op jobs, one worker; and,
    for scale, the same chain made by hand with RQ's ``depends_on``."""
    spans: dict[str, list[float]] = {"workflow": [], "plain": [], "rq": []}
    for number in range(rounds):
        for name in _abba(list(spans), number):
            if name == "workflow":
                ids = _run_ids(_wait_run(registry.start_workflow("chain")))
            elif name == "plain":
                ids = [job.id for job in registry.enqueue_many([("noop", (), {})] * steps)]
                _wait_jobs(registry, ids)
            else:
                ids = _rq_chain(registry, steps)
                _wait_jobs(registry, ids)
            spans[name].append(_span(registry, ids))
    figures = _span_figures(spans, steps)
    figures["rq_ms"] = statistics.median(spans["rq"]) * 1000
    return figures


def _rq_chain(registry: Registry, steps: int) -> list[str]:
    """``steps`` no-op jobs, each depending on the one before, enqueued with RQ's API."""
    queue = Queue("default", connection=registry.connection, serializer=JSONSerializer)
    ids: list[str] = []
    for _ in range(steps):
        job = queue.enqueue("benchwf.noop", depends_on=ids[-1] if ids else None)
        ids.append(job.id)
    return ids


# -- 3. fan-in ------------------------------------------------------------------------------


def measure_fan_in(registry: Registry, items: int, rounds: int) -> dict[str, Any]:
    """A fan-out of ``items`` and its fan-in against ``items`` + 1 plain jobs, one worker."""
    spans: dict[str, list[float]] = {"workflow": [], "plain": []}
    commands: dict[str, dict[str, int]] = {}
    for number in range(rounds):
        for name in _abba(list(spans), number):
            before = _commandstats(registry.connection)
            if name == "workflow":
                run = registry.start_workflow("fan", items=list(range(items)))
                ids = _run_ids(_wait_run(run))
            else:
                calls = [("noop", (), {"item": i}) for i in range(items)]
                ids = [job.id for job in registry.enqueue_many([*calls, ("noop", (), {})])]
                _wait_jobs(registry, ids)
            spans[name].append(_span(registry, ids))
            commands[name] = _difference(_commandstats(registry.connection), before)
    figures = _span_figures(spans, items + 1)
    for name, counted in commands.items():
        figures[f"{name}_commands_per_item"] = sum(counted.values()) / items
        figures[f"{name}_hget_per_item"] = counted.get("hget", 0) / items
    return figures


# -- the worker and the runs ----------------------------------------------------------------


@contextmanager
def _worker(path: Path, url: str, registry: Registry) -> Iterator[None]:
    """One ``taskkit run-worker --worker-class simple``, registered before it is used."""
    env = {**os.environ, "REDIS_URL": url}
    for name in ("TASKKIT_CONFIG", "TASKKIT_EAGER", "TASKKIT_REDIS_URL"):
        env.pop(name, None)
    command = [*TASKKIT, "run-worker", "-c", str(path), "--worker-class", "simple"]
    process = subprocess.Popen(
        [*command, "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(
            lambda: bool(registry.connection.smembers("rq:workers")) or process.poll() is not None,
            "the worker to start",
        )
        if process.poll() is not None:
            sys.exit(f"run-worker exited: {process.communicate()[0].decode()}")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        if process.returncode != 0:
            print(output, file=sys.stderr)


def _wait(done: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _wait_run(run: Any) -> WorkflowRun:
    last = _run_ids(run)[-1]  # one worker: the last step ends last
    _wait(
        lambda: (
            run.registry.connection.hmget(f"rq:job:{last}", ["status"])[0]
            in (b"finished", b"failed")
        ),
        f"run {run.id}",
    )
    if run.status() != "finished":
        sys.exit(f"run {run.id} of {run.workflow} ended {run.status()}")
    return run  # type: ignore[no-any-return]


def _run_ids(run: WorkflowRun) -> list[str]:
    return [job.id for view in run.steps() for job in view.jobs]


def _wait_jobs(registry: Registry, ids: list[str]) -> None:
    """Until the last of ``ids`` finished: one worker works them in order. HMGET, so that
    the polling shows in no HGET count."""

    def finished() -> bool:
        return registry.connection.hmget(f"rq:job:{ids[-1]}", ["status"]) == [b"finished"]

    _wait(finished, f"{len(ids)} jobs")


def _span(registry: Registry, ids: list[str]) -> float:
    """Seconds from the first start to the last end among ``ids``, as RQ stamped them."""
    with registry.connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", ["started_at", "ended_at"])
        stamps = pipe.execute()
    starts = [datetime.fromisoformat(s.decode()) for s, _ in stamps]
    ends = [datetime.fromisoformat(e.decode()) for _, e in stamps]
    return (max(ends) - min(starts)).total_seconds()


def _span_figures(spans: dict[str, list[float]], jobs: int) -> dict[str, Any]:
    workflow = statistics.median(spans["workflow"])
    plain = statistics.median(spans["plain"])
    return {
        "jobs": jobs,
        "workflow_ms": workflow * 1000,
        "plain_ms": plain * 1000,
        "ratio": workflow / plain,
        "overhead_ms_per_job": (workflow - plain) * 1000 / jobs,
    }


def _commandstats(conn: redis.Redis) -> dict[str, int]:
    stats = conn.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    changed["info"] = changed.get("info", 0) - 1  # the INFO that read "after" counts itself
    return {name: calls for name, calls in changed.items() if calls > 0}


def _abba(names: list[str], round_number: int) -> list[str]:
    return names if round_number % 2 == 0 else list(reversed(names))


@contextmanager
def _counting() -> Iterator[dict[str, int]]:
    """Round trips this process sends inside the block (one per command or pipeline)."""
    counts = {"round_trips": 0}
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        counts["round_trips"] += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


# -- report ---------------------------------------------------------------------------------


def render(figures: dict[str, Any]) -> str:
    """The figures as a markdown table (what section 10 of the suite shows)."""
    start, chain, fan = figures["start"], figures["chain"], figures["fan_in"]
    items, steps = figures["items"], figures["steps"]
    rows = [
        "| measure | workflow | plain jobs | ratio |",
        "| --- | --- | --- | --- |",
        f"| start a fan-out of {items} items (+ fan-in) vs `enqueue_many` of {items} jobs "
        f"| {start['workflow_ms']:.1f} ms, {start['workflow_round_trips']} round trips "
        f"| {start['plain_ms']:.1f} ms, {start['plain_round_trips']} round trips "
        f"| {start['ratio']:.2f}x |",
        f"| a chain of {steps} no-op steps vs {steps} no-op jobs, one simple worker "
        f"| {chain['workflow_ms']:.0f} ms | {chain['plain_ms']:.0f} ms | {chain['ratio']:.2f}x |",
        f"| the same chain made with RQ's `depends_on` vs {steps} no-op jobs "
        f"| {chain['rq_ms']:.0f} ms | {chain['plain_ms']:.0f} ms "
        f"| {chain['rq_ms'] / chain['plain_ms']:.2f}x |",
        f"| a fan-out of {items} no-op items + fan-in vs {items + 1} no-op jobs "
        f"| {fan['workflow_ms']:.0f} ms | {fan['plain_ms']:.0f} ms | {fan['ratio']:.2f}x |",
        f"| Redis commands per item (of them `HGET`) "
        f"| {fan['workflow_commands_per_item']:.1f} ({fan['workflow_hget_per_item']:.1f}) "
        f"| {fan['plain_commands_per_item']:.1f} ({fan['plain_hget_per_item']:.1f}) | |",
    ]
    notes = [
        "",
        f"Per step of the chain: {chain['overhead_ms_per_job']:+.2f} ms over a plain job; "
        f"per item of the fan-out: {fan['overhead_ms_per_job']:+.2f} ms. Medians of "
        f"{figures['rounds']} alternating rounds.",
    ]
    if figures.get("quick"):
        notes.append("(--quick: tiny sizes, the figures mean little)")
    return "\n".join(rows + notes)


if __name__ == "__main__":
    sys.exit(main())
