"""The long-running commands: ``run-worker``, ``run-scheduler`` and ``dev``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from taskkit.cli.options import (
    config_option,
    duration,
    load_registry,
    log_options,
    worker_class_option,
    worker_settings_options,
)
from taskkit.cli.signals import exit_at_the_next_stop_signal
from taskkit.logs import setup_logging
from taskkit.registry import Registry

if TYPE_CHECKING:
    from taskkit.schedules.process import BackgroundScheduler


@click.command("run-worker")
@config_option
@click.option(
    "--queues", default=None, help="Comma-separated queues, in priority order [default: all]."
)
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--with-scheduler", is_flag=True, help="Also run the recurring schedules.")
@worker_class_option
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (RQ's worker pool).",
)
@click.option(
    "--max-jobs", type=click.IntRange(min=1), default=None, help="Exit after this many jobs."
)
@worker_settings_options
@log_options
def run_worker(  # noqa: PLR0917 - click passes options positionally
    config_path: Path | None,
    queues: str | None,
    burst: bool,
    with_scheduler: bool,
    worker_class: str,
    processes: int,
    max_jobs: int | None,
    log_level: str,
    log_format: str,
    **settings: int | None,
) -> None:
    """Run jobs from the queues; SIGTERM finishes the current job, then exits.

    A second SIGTERM stops the job at once (it is retried or failed with the reason).
    The job of a worker that died is retried or failed by another worker within 70 s
    with the default settings below; see docs/reliability.md, "Recovery times".
    """
    from taskkit.worker import exit_on_stop_signals
    from taskkit.worker import run_worker as run

    if processes > 1 and max_jobs is not None:
        raise click.UsageError("--max-jobs works with --processes 1 only (RQ's pool has no limit)")
    if processes == 1:
        exit_on_stop_signals()  # until the worker starts: loading and the app take a while
    registry = load_registry(config_path)
    names = _queue_list(registry, queues)
    overrides = {name: value for name, value in settings.items() if value is not None}
    setup_logging(log_level, log_format)  # type: ignore[arg-type]
    background = _start_scheduler(registry, burst) if with_scheduler else None
    try:
        run(
            registry,
            queues=names,
            worker_class=worker_class,  # type: ignore[arg-type]
            burst=burst,
            max_jobs=max_jobs,
            processes=processes,
            log_level=log_level,
            settings=registry.config.worker.model_copy(update=overrides),
        )
    finally:
        if background is not None:
            background.stop()
        exit_at_the_next_stop_signal()


def _start_scheduler(registry: Registry, burst: bool) -> BackgroundScheduler | None:
    from taskkit import schedules
    from taskkit.schedules.process import BackgroundScheduler

    for change in schedules.sync(registry):
        if change.action != "unchanged":
            logging.getLogger("taskkit.scheduler").info("sync: %s", change)
    if burst:
        schedules.Scheduler(registry).tick()  # fire what is due now, then work it off
        return None
    return BackgroundScheduler(registry).start()


def _queue_list(registry: Registry, queues: str | None) -> list[str]:
    if not queues:
        return registry.queue_names
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in registry.queue_names]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)} not declared in {registry.path} "
            f"(queues: {', '.join(registry.queue_names)})",
            param_hint="--queues",
        )
    return names


@click.command("run-scheduler")
@config_option
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between passes.",
)
@click.option("--burst", is_flag=True, help="Sync, fire what is due now, and exit.")
@click.option(
    "--redis-timeout",
    callback=duration,
    default=None,
    metavar="DURATION",
    help="How long Redis may be away (at start or later) before exiting 1 "
    "[default: worker.redis_timeout in jobs.yaml, else 5m]",
)
@log_options
def run_scheduler(  # noqa: PLR0917 - click passes options positionally
    config_path: Path | None,
    interval: float,
    burst: bool,
    redis_timeout: int | None,
    log_level: str,
    log_format: str,
) -> None:
    """Sync schedules, then enqueue each tick once (any number may run).

    Redis going away is waited out: passes are retried 0.5, 1, then every 2 s, for up to
    the Redis timeout; when Redis comes back empty, the schedules are synced again.
    """
    from taskkit.schedules.process import run_scheduler as run

    registry = load_registry(config_path)
    setup_logging(log_level, log_format)  # type: ignore[arg-type]
    timeout = redis_timeout if redis_timeout is not None else registry.config.worker.redis_timeout
    try:
        run(registry, interval=interval, burst=burst, redis_timeout=timeout)
    finally:
        exit_at_the_next_stop_signal()


@click.command()
@config_option
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between checks for changed files.",
)
@worker_class_option
@log_options
def dev(
    config_path: Path | None, poll: float, worker_class: str, log_level: str, log_format: str
) -> None:
    """Local development: Redis (started if none answers), a worker and the scheduler,
    restarted when jobs.yaml or a job module changes. Ctrl-C stops everything."""
    from taskkit.dev import DevRunner

    registry = load_registry(config_path)
    worker_args = ("--worker-class", worker_class, "--log-level", log_level)
    runner = DevRunner(
        registry,
        poll=poll,
        worker_args=(*worker_args, "--log-format", log_format),
        echo=click.echo,
    )
    sys.exit(runner.run())


COMMANDS = [run_worker, run_scheduler, dev]
"""This module's commands, added to the ``taskkit`` group by :mod:`taskkit.cli.root`."""

__all__ = ["COMMANDS", "dev", "run_scheduler", "run_worker"]
