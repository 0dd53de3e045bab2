"""The commands about jobs.yaml itself: ``validate``, ``list`` and ``schema``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from taskkit.cli.options import config_option, load_registry
from taskkit.cli.output import schedule_form, table
from taskkit.config import format_duration
from taskkit.errors import TaskkitError
from taskkit.flow import flow_keys
from taskkit.timing import next_fire_times


@click.command()
@config_option
def validate(config_path: Path | None) -> None:
    """Check jobs.yaml: syntax, keys, references, and that every func imports."""
    registry = load_registry(config_path)
    config = registry.config
    click.echo(
        f"{registry.path}: OK ({len(config.jobs)} jobs, {len(registry.queue_names)} queues, "
        f"{len(config.schedules)} schedules)"
    )


@click.command("list")
@config_option
def list_(config_path: Path | None) -> None:
    """Show jobs with their effective settings, queues, and schedules with next runs."""
    registry = load_registry(config_path)
    rows = [
        (
            job.name,
            job.settings.queue,
            job.settings.context,
            format_duration(job.settings.timeout),
            _retry_text(job.settings.retry.max, job.settings.retry.waits()),
            flow_keys(job.settings),
            job.settings.func,
        )
        for job in registry.jobs.values()
    ]
    table("JOBS", ("name", "queue", "context", "timeout", "retry", "flow", "func"), rows)
    counts: dict[str, int] = {}
    for job in registry.jobs.values():
        counts[job.settings.queue] = counts.get(job.settings.queue, 0) + 1
    table(
        "QUEUES (priority order)",
        ("name", "jobs"),
        [(name, str(counts.get(name, 0))) for name in registry.queue_names],
    )
    now = datetime.now(UTC)
    schedule_rows = []
    for name, schedule in registry.config.schedules.items():
        upcoming = next_fire_times(schedule, now, 1) if schedule.enabled else []
        when = upcoming[0].astimezone(schedule.tz).isoformat() if upcoming else "-"
        schedule_rows.append((name, schedule.target, schedule_form(schedule), when))
    table("SCHEDULES", ("name", "job", "when", "next run"), schedule_rows)
    click.echo(f"redis: {registry.redis_url}")
    _echo_env_files()


ENV_FILES = "taskkit.env_files"
"""The key in the click context's meta of the .env files the ``taskkit`` command read."""


def _echo_env_files() -> None:
    from taskkit.loader.envfiles import SKIP_VARIABLE, skipped

    meta = click.get_current_context().meta
    if ENV_FILES not in meta:
        return  # flask taskkit: flask read them, or was told not to
    files: list[Path] = meta[ENV_FILES]
    if files:
        click.echo(f"env files: {', '.join(str(f) for f in files)}")
    elif skipped():
        click.echo(f"env files: none ({SKIP_VARIABLE} is set)")
    else:
        click.echo("env files: none (no .env or .flaskenv here or above)")


def _retry_text(count: int, intervals: Sequence[int]) -> str:
    """``3x (10s, 1m, 1m: the last wait repeats)``: every wait, as RQ will use them."""
    if count <= 0:
        return "no"
    if not intervals:
        return f"{count}x (at once)"
    waits = [*intervals, *[intervals[-1]] * (count - len(intervals))][:count]
    text = ", ".join(format_duration(i) for i in waits)
    if count > len(intervals) > 1 or (count > 1 and len(intervals) == 1):
        text += ": the last wait repeats"
    elif count < len(intervals):
        text += f"; {len(intervals) - count} more never used"
    return f"{count}x ({text})"


@click.command()
@config_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the schema to this file instead of stdout.",
)
def schema(config_path: Path | None, output: Path | None) -> None:
    """Print the JSON Schema of jobs.yaml (for editors: yaml-language-server)."""
    from taskkit.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise TaskkitError(
                f"cannot write {output}: {error.strerror or error}"
                " (check that the folder exists and is writable)"
            ) from None
        click.echo(f"wrote {output}")


COMMANDS = [validate, list_, schema]
"""This module's commands, added to the ``taskkit`` group by :mod:`taskkit.cli.root`."""

__all__ = ["COMMANDS", "ENV_FILES", "list_", "schema", "validate"]
