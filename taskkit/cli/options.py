"""Options shared by several commands, defined once: ``-c/--config``, logging, the worker
class and settings, durations; and the registry a command works on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from taskkit.config import format_duration, parse_duration
from taskkit.loader import default_config_path
from taskkit.registry import Registry, load

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    """``-c/--config``, shared by every command."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="jobs.yaml to use [default: $TASKKIT_CONFIG, else ./jobs.yaml]",
    )(func)


def load_registry(path: Path | None) -> Registry:
    """The registry of ``-c``'s file, else of the app's (``flask taskkit``), else the default."""
    return load(_config_path(path))


def _config_path(path: Path | None) -> Path:
    if path is not None:
        return path
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, dict) and "default_config" in ctx.obj:
            return Path(ctx.obj["default_config"])
        ctx = ctx.parent
    return default_config_path()


def log_options(func: F) -> F:
    """``--log-level`` and ``--log-format``, shared by the long-running commands."""
    func = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: one object per line with job, queue, job_id, duration_ms, outcome.",
    )(func)
    return click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        default="INFO",
        show_default=True,
    )(func)


def worker_class_option(func: F) -> F:
    """``--worker-class``, shared by run-worker and dev."""
    return click.option(
        "--worker-class",
        type=click.Choice(["fork", "simple", "spawn"]),
        default="fork",
        show_default=True,
        help="fork: a work horse per job; simple: in process; spawn: fresh process.",
    )(func)


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A positive duration option (45, 45s, 10m, 1h30m) in seconds; None if not given."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None
    if seconds <= 0:
        raise click.BadParameter("must be more than zero seconds; write e.g. 30s", ctx, param)
    return seconds


_WORKER_SETTINGS = {
    "heartbeat_interval": "How often a busy worker renews its job's heartbeat.",
    "heartbeat_grace": "How long past its renewal a heartbeat lasts; a job whose "
    "heartbeat expired counts as abandoned.",
    "maintenance_interval": "How often a worker looks for abandoned jobs to retry or fail.",
    "redis_timeout": "How long to wait for Redis (at start or in an outage) before exiting 1.",
}


def worker_settings_options(func: F) -> F:
    """``--heartbeat-interval`` and friends: they override ``worker:`` in jobs.yaml."""
    from taskkit.config import WorkerConfig

    for name, text in reversed(_WORKER_SETTINGS.items()):
        default = format_duration(WorkerConfig.model_fields[name].default)
        func = click.option(
            "--" + name.replace("_", "-"),
            name,
            callback=duration,
            default=None,
            metavar="DURATION",
            help=f"{text} [default: worker.{name} in jobs.yaml, else {default}]",
        )(func)
    return func


__all__ = [
    "config_option",
    "duration",
    "load_registry",
    "log_options",
    "worker_class_option",
    "worker_settings_options",
]
