"""taskkit's benchmark suite: one command, every figure side by side, as a markdown report.

    python benchmarks/run.py            # the full run (~12 min); writes benchmarks/results.md
    python benchmarks/run.py --quick    # a smoke run (well under a minute); figures mean little
    python benchmarks/run.py --only throughput,enqueue   # some sections only

Everything runs against a private ``redis-server`` started for the run (or
``--redis-url``: a server whose databases 1-15 are empty; they are flushed afterwards).
Variants are measured side by side in one run, alternating, over several rounds, and the
report gives medians and ratios: on a shared, noisy machine only ratios measured together
mean anything. Throughput comes from RQ's own job timestamps (start-up excluded), with
whole-process figures where start-up is the point (Flask-RQ).

Sections: ``throughput`` (1: taskkit vs bare RQ), ``flask-rq`` (2), ``seed`` (3),
``roundtrips`` (4), ``enqueue`` (5), ``loader`` (6), ``schedules`` (7), ``processes`` (8),
``memory`` (9), ``workflows`` (10), ``flow`` (11: the per-job cost of each flow-control
key), ``profile`` (where a fork work horse's time goes). Flask-RQ comes from the ``bench``
extra (``pip install -e '.[bench]'``); without it that section is skipped.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from common import (  # noqa: E402 -- after the path set-up above
    Section,
    Target,
    database,
    flush,
    machine_facts,
    redis_server,
    write_jobs_yaml,
)

SECTIONS = (
    "throughput",
    "flask-rq",
    "seed",
    "roundtrips",
    "enqueue",
    "loader",
    "schedules",
    "processes",
    "memory",
    "workflows",
    "profile",
    "flow",
)


@dataclass(frozen=True)
class Sizes:
    """How much each section does; ``--quick`` shrinks everything."""

    rounds: int = 11
    simple_jobs: int = 400
    fork_jobs: int = 120
    seed_jobs: int = 40
    flask_rq_jobs: int = 8
    warmup: int = 100
    whole_process_jobs: int = 20
    whole_process_rounds: int = 3
    roundtrip_jobs: int = 20
    roundtrip_classes: tuple[str, ...] = ("simple", "fork")
    enqueue_jobs: int = 500
    enqueue_rounds: int = 7
    loader_jobs: int = 1000
    loader_runs: int = 5
    schedule_seconds: float = 20.0
    schedule_count: int = 5
    sync_count: int = 1000
    process_rounds: int = 9
    process_jobs_simple: int = 300
    process_jobs_fork: int = 100
    memory_jobs_simple: int = 10_000
    memory_jobs_fork: int = 10_000
    profile_jobs: int = 150
    profile_rounds: int = 2
    workflow_items: int = 100
    workflow_steps: int = 50
    workflow_rounds: int = 5
    flow_jobs: int = 200
    flow_rounds: int = 7


QUICK = Sizes(
    rounds=1,
    simple_jobs=20,
    fork_jobs=5,
    seed_jobs=5,
    flask_rq_jobs=2,
    warmup=5,
    whole_process_jobs=2,
    whole_process_rounds=1,
    roundtrip_jobs=3,
    roundtrip_classes=("simple",),
    enqueue_jobs=20,
    enqueue_rounds=1,
    loader_jobs=50,
    loader_runs=1,
    schedule_seconds=3.0,
    schedule_count=2,
    sync_count=50,
    process_rounds=1,
    process_jobs_simple=10,
    process_jobs_fork=4,
    memory_jobs_simple=40,
    memory_jobs_fork=20,
    profile_jobs=8,
    profile_rounds=1,
    workflow_items=10,
    workflow_steps=5,
    workflow_rounds=1,
    flow_jobs=10,
    flow_rounds=1,
)


def log(message: str) -> None:
    """Progress, on stderr (stdout is the report)."""
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections and print (and write) the report."""
    options = _parse(argv)
    sizes = _sizes(options)
    chosen = _chosen(options)
    started = time.monotonic()
    with redis_server(options.redis_url) as server, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The benchmark jobs.yaml reads ${REDIS_URL}; each worker gets its own database.
        os.environ["REDIS_URL"] = server
        os.environ.pop("TASKKIT_REDIS_URL", None)
        jobs_yaml = write_jobs_yaml(folder)
        facts = machine_facts(server)
        sections = run_sections(
            chosen, sizes, server, folder=folder, jobs_yaml=jobs_yaml, options=options
        )
    report = render(sections, facts, options, time.monotonic() - started)
    sys.stdout.write(report)
    output = options.output or (None if options.quick else BENCHMARKS / "results.md")
    if output:
        Path(output).write_text(report, encoding="utf-8")
        log(f"report written to {output}")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--redis-url", help="a server with empty databases 1-15 (default: private)")
    parser.add_argument(
        "--output",
        help="write the report here too (default: benchmarks/results.md; none with --quick)",
    )
    parser.add_argument("--rounds", type=int, help="throughput rounds [11]")
    parser.add_argument(
        "--memory-jobs", type=int, help="jobs before the last RSS reading, simple [10000]"
    )
    parser.add_argument("--memory-fork-jobs", type=int, help="the same for the fork worker [10000]")
    parser.add_argument(
        "--no-flask-rq", action="store_true", help="skip Flask-RQ (it runs ~1-4 jobs/s)"
    )
    return parser.parse_args(argv)


def _sizes(options: argparse.Namespace) -> Sizes:
    sizes = QUICK if options.quick else Sizes()
    changes = {
        "rounds": options.rounds,
        "memory_jobs_simple": options.memory_jobs,
        "memory_jobs_fork": options.memory_fork_jobs,
    }
    from dataclasses import replace

    return replace(sizes, **{k: v for k, v in changes.items() if v is not None})


def _chosen(options: argparse.Namespace) -> list[str]:
    if not options.only:
        return list(SECTIONS)
    chosen = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    return chosen


def run_sections(
    chosen: list[str],
    sizes: Sizes,
    server: str,
    *,
    folder: Path,
    jobs_yaml: Path,
    options: argparse.Namespace,
) -> list[Section]:
    """Run the chosen sections, noisiest-sensitive first; their report sections."""
    sections: list[Section] = []
    sections += _workers(chosen, sizes, server, folder=folder, jobs_yaml=jobs_yaml, options=options)
    if "processes" in chosen:
        sections.append(_processes(sizes, server, folder, jobs_yaml))
    if "roundtrips" in chosen:
        sections.append(_roundtrips(sizes, server))
    if "enqueue" in chosen:
        sections.append(_enqueue(sizes, server, jobs_yaml))
    if "loader" in chosen:
        sections.append(_loader(sizes))
    if "schedules" in chosen:
        sections.append(_schedules(sizes, server, folder))
    if "workflows" in chosen:
        sections.append(_workflows(sizes, server, folder))
    if "profile" in chosen:
        sections.append(_profile(sizes, server, folder))
    if "flow" in chosen:
        sections.append(_flow(sizes, server, folder))
    order = {name: i for i, name in enumerate(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])}
    return sorted(sections, key=lambda s: order.get(s.title.split(".")[0], 99))


# -- 1, 2, 3, 9: long-lived workers --------------------------------------------------------


def _workers(
    chosen: list[str],
    sizes: Sizes,
    server: str,
    *,
    folder: Path,
    jobs_yaml: Path,
    options: argparse.Namespace,
) -> list[Section]:
    import bench_memory
    import bench_throughput as throughput
    from runners import start_runners, stop_runners

    wanted = {"throughput", "flask-rq", "seed", "memory"} & set(chosen)
    if not wanted:
        return []
    settings = throughput.Settings(
        rounds=sizes.rounds,
        simple_jobs=sizes.simple_jobs,
        fork_jobs=sizes.fork_jobs,
        seed_jobs=sizes.seed_jobs,
        flask_rq_jobs=sizes.flask_rq_jobs,
        warmup=sizes.warmup,
        whole_process_jobs=sizes.whole_process_jobs,
        whole_process_rounds=sizes.whole_process_rounds,
        flask_rq="flask-rq" in chosen and not options.no_flask_rq,
    )
    skipped = _flask_rq_skip_reason(settings, options)
    flask_rq = settings.flask_rq and skipped is None
    variants = throughput.variants(jobs_yaml, settings, seed="seed" in chosen, flask_rq=flask_rq)
    if wanted == {"memory"}:
        variants = [v for v in variants if v.name in _MEMORY_RUNNERS]
    log(f"starting {len(variants)} workers: {', '.join(v.name for v in variants)}")
    runners = start_runners(variants, server, 1, folder)
    sections: list[Section] = []
    try:
        if wanted - {"memory"}:
            log(f"throughput: {settings.rounds} alternating rounds")
            rates = throughput.measure(runners, settings.rounds, log=False)
            _log_rates(rates)
            cpu = throughput.cpu_per_job(runners)
            context = None
            if "seed" in chosen:
                log("seed: the context's cost per call, in process")
                calls = 200 if not options.quick else 5
                context = throughput.context_cost(jobs_yaml, runners[0].env, calls)
            sections += [
                s
                for s in throughput.report(rates, cpu, settings, context)
                if "throughput" in chosen or s.title.startswith("3")
            ]
        if "memory" in chosen:
            log("memory: topping up the workers")
            by_name = {r.variant.name: r for r in runners if r.variant.name in _MEMORY_RUNNERS}
            totals = {
                name: sizes.memory_jobs_fork if "fork" in name else sizes.memory_jobs_simple
                for name in by_name
            }
            sections.append(bench_memory.section(bench_memory.top_up(by_name, totals)))
    finally:
        stop_runners(runners)
    if "flask-rq" in chosen:
        if flask_rq:
            log("Flask-RQ: whole processes")
            whole = throughput.whole_process(server, 7, jobs_yaml, folder, settings)
            sections.append(throughput.flask_rq_section(rates, whole, settings))
        else:
            sections.append(throughput.flask_rq_section(None, None, settings, skipped))
    return sections


_MEMORY_RUNNERS = ("taskkit simple", "bare RQ simple", "taskkit fork", "bare RQ fork")


def _flask_rq_skip_reason(settings: object, options: argparse.Namespace) -> str | None:
    import bench_throughput as throughput

    if options.no_flask_rq:
        return "--no-flask-rq"
    if options.quick:
        return "--quick (Flask-RQ runs a process per job; the full run measures it)"
    if not throughput.flask_rq_available():
        return "Flask-RQ is not installed (pip install -e '.[bench]')"
    return None


def _log_rates(rates: dict[str, list[float]]) -> None:
    for name, values in rates.items():
        log(f"  {name:16} " + " ".join(f"{v:7.1f}" for v in values))


# -- the others -----------------------------------------------------------------------------


def _processes(sizes: Sizes, server: str, folder: Path, jobs_yaml: Path) -> Section:
    import bench_processes
    import bench_throughput as throughput
    from runners import start_runners, stop_runners

    log("processes: 2 vs 1")
    batch = {"simple": sizes.process_jobs_simple, "fork": sizes.process_jobs_fork}
    variants = bench_processes.variants(jobs_yaml, ("fork", "simple"), batch)
    runners = start_runners(variants, server, 8, folder)
    try:
        rates = throughput.measure(runners, sizes.process_rounds, log=False)
        _log_rates(rates)
    finally:
        stop_runners(runners)
    return bench_processes.section(rates, runners, sizes.process_rounds)


def _flow(sizes: Sizes, server: str, folder: Path) -> Section:
    import bench_flow
    import bench_throughput as throughput
    from runners import start_runners, stop_runners

    log("flow control: each key against none")
    jobs_yaml = bench_flow.write_jobs_yaml(folder)
    variants = bench_flow.variants(jobs_yaml, sizes.flow_jobs, min(20, sizes.flow_jobs))
    runners = start_runners(variants, server, 1, folder)
    try:
        rates = throughput.measure(runners, sizes.flow_rounds, log=False)
        _log_rates(rates)
    finally:
        stop_runners(runners)
    return bench_flow.section(rates, runners, sizes.flow_rounds)


def _roundtrips(sizes: Sizes, server: str) -> Section:
    import bench_roundtrips

    log("round trips: counting")
    url = database(server, 12)
    try:
        results = bench_roundtrips.measure(url, sizes.roundtrip_jobs, sizes.roundtrip_classes)
    finally:
        flush(url)
    section: Section = bench_roundtrips.section(results, sizes.roundtrip_jobs)
    return section


def _enqueue(sizes: Sizes, server: str, jobs_yaml: Path) -> Section:
    import bench_enqueue

    log("enqueue")
    url = database(server, 13)
    try:
        rates = bench_enqueue.measure(url, jobs_yaml, sizes.enqueue_jobs, sizes.enqueue_rounds)
        trips = bench_enqueue.round_trips(url, jobs_yaml)
    finally:
        flush(url)
    return bench_enqueue.section(rates, trips, sizes.enqueue_jobs, sizes.enqueue_rounds)


def _loader(sizes: Sizes) -> Section:
    import bench_loader

    log("loader")
    count = sizes.loader_jobs
    section = Section(f"6. Loader: a jobs.yaml of {count:,} jobs and {count:,} schedules")
    with tempfile.TemporaryDirectory(prefix="taskkit-bench-") as tmp:
        path = bench_loader.generate(Path(tmp), count, count)
        bench_loader.validate(path)  # warm up: taskkit's imports, pydantic's schemas
        load_s = bench_loader.median_seconds(lambda: bench_loader.validate(path), sizes.loader_runs)
        process_s = bench_loader.median_seconds(
            lambda: bench_loader.validate_in_a_process(path), max(1, sizes.loader_runs // 2)
        )
    section.table(
        ["step", f"{count} jobs + {count} schedules", "target"],
        [
            [
                "`taskkit.load` (= validate, imports included), in process",
                f"{load_s * 1000:.0f} ms",
                "< 1 s",
            ],
            ["`taskkit validate`, a whole process", f"{process_s * 1000:.0f} ms", "-"],
        ],
    )
    section.say(
        f"Medians of {sizes.loader_runs} runs (benchmarks/bench_loader.py has the comparison "
        "with PyYAML and a `--profile`)."
    )
    section.targets.append(
        Target(f"load {count} jobs + {count} schedules", f"{load_s:.2f} s", "< 1 s", load_s < 1.0)
    )
    return section


def _schedules(sizes: Sizes, server: str, folder: Path) -> Section:
    import bench_schedules
    import redis

    log("schedules: lateness and sync")
    url = database(server, 15)
    home = folder / "schedules"
    home.mkdir()
    (home / "benchjobs.py").write_text(bench_schedules.JOB_MODULE)
    conn = redis.Redis.from_url(url)
    try:
        late = bench_schedules.measure_lateness(
            home, url, sizes.schedule_count, sizes.schedule_seconds
        )
        conn.flushdb()
        sync = bench_schedules.measure_sync(home, url, conn, sizes.sync_count)
    finally:
        conn.close()
        flush(url)
    section = Section("7. Schedules: fire lateness, and syncing many schedules")
    section.table(
        ["measure", "value"],
        [
            [
                f"lateness of `run-scheduler` ({late['schedules']} x every 1s, "
                f"{late['seconds']:.0f} s, {late['jobs']} fires)",
                f"p50 {late['p50_ms']:.0f} ms, p99 {late['p99_ms']:.0f} ms, "
                f"max {late['max_ms']:.0f} ms",
            ],
            ["ticks fired twice / missing", f"{late['duplicates']} / {late['missing']}"],
            [
                f"first sync of {sync['schedules']} schedules",
                _sync_cell(sync["first"]),
            ],
            ["second sync (nothing to do)", _sync_cell(sync["noop"])],
        ],
    )
    section.say(
        "Lateness: RQ's `enqueued_at` minus the tick's nominal time, for a real "
        "`taskkit run-scheduler` at its default 1 s interval (benchmarks/bench_schedules.py)."
    )
    section.targets.append(
        Target(
            "schedule fire lateness p99",
            f"{late['p99_ms']:.0f} ms",
            "<= 1 s, no duplicates",
            late["p99_ms"] <= 1000 and late["duplicates"] == 0,
        )
    )
    return section


def _sync_cell(run: dict[str, object]) -> str:
    seconds = float(run["seconds"])  # type: ignore[arg-type]
    return f"{seconds * 1000:.0f} ms, {run['round_trips']} round trips, {run['commands']} commands"


def _workflows(sizes: Sizes, server: str, folder: Path) -> Section:
    import bench_workflows

    log("workflows: start, steps and fan-in")
    url = database(server, 12)
    home = folder / "workflows"
    home.mkdir()
    try:
        figures = bench_workflows.measure(
            home,
            url,
            items=sizes.workflow_items,
            steps=sizes.workflow_steps,
            rounds=sizes.workflow_rounds,
        )
    finally:
        flush(url)
    section = Section("10. Workflows: starting a run, each step, a fan-in")
    section.lines += [*bench_workflows.render(figures).splitlines(), ""]
    section.say(
        "One `taskkit run-worker --worker-class simple` works every variant, alternating; "
        "spans run from the first job's start to the last one's end, as RQ stamped them. "
        "Commands are counted by the server (benchmarks/bench_workflows.py)."
    )
    return section


def _profile(sizes: Sizes, server: str, folder: Path) -> Section:
    import profile_fork

    log("profile: fork work horses")
    home = folder / "profile"
    home.mkdir()
    results = profile_fork.profile(server, sizes.profile_jobs, sizes.profile_rounds, home)
    return profile_fork.section(results, sizes.profile_jobs, sizes.profile_rounds)


# -- the report -------------------------------------------------------------------------------


def render(
    sections: list[Section],
    facts: list[tuple[str, str]],
    options: argparse.Namespace,
    seconds: float,
) -> str:
    """The whole report as markdown."""
    argv = ["python", "benchmarks/run.py", *sys.argv[1:]]
    quick = " — QUICK: smoke sizes, figures mean little" if options.quick else ""
    lines = [
        "# taskkit benchmarks",
        "",
        f"Command: `{shlex.join(argv)}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{seconds / 60:.1f} min){quick}",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in facts),
        "",
        "## Targets",
        "",
        "| target | measured | asked | verdict |",
        "| --- | --- | --- | --- |",
    ]
    targets: list[Target] = [t for s in sections for t in s.targets]
    lines += [f"| {t.what} | {t.measured} | {t.target} | {t.verdict} |" for t in targets]
    lines.append("")
    for section in sections:
        lines += [f"## {section.title}", "", *section.lines]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
