"""How the commands print: aligned tables, and a schedule's form in words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click

from taskkit.config import ScheduleConfig, format_duration


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print ``title``, then the header and rows in aligned columns, then a blank line."""
    rows = list(rows)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    click.echo(title)
    for row in (header, *rows):
        click.echo(
            "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    click.echo()


def schedule_form(schedule: ScheduleConfig) -> str:
    """When a schedule fires, as written: ``cron 0 3 * * * UTC``, ``every 1m``, ``at ...``."""
    if schedule.cron is not None:
        return f"cron {schedule.cron} {schedule.timezone}"
    if schedule.every is not None:
        return f"every {format_duration(schedule.every)}"
    assert schedule.at is not None  # the model requires one of the three forms
    return f"at {schedule.at.isoformat()}"


def plural(count: int, noun: str = "job") -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count} {noun}{'s' if count != 1 else ''}"


__all__ = ["plural", "schedule_form", "table"]
