"""``taskkit legacy convert``: jobs queued before the switch to taskkit, drained safely."""

from __future__ import annotations

from pathlib import Path

import click

from taskkit.cli.group import TaskkitGroup
from taskkit.cli.options import config_option, load_registry


@click.group(cls=TaskkitGroup)
def legacy() -> None:
    """Jobs queued before the switch to taskkit (pickled by RQ, Flask-RQ2, Flask-RQ)."""


@legacy.command("convert")
@config_option
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Only this queue (repeatable) [default: every RQ queue on the database].",
)
@click.option("--dry-run", is_flag=True, help="Print what would be converted; change nothing.")
def legacy_convert(config_path: Path | None, queues: tuple[str, ...], dry_run: bool) -> None:
    """Rewrite pickled jobs that call a declared function as taskkit jobs (JSON, same id).

    Run once after the deploy that switches to taskkit; other jobs are left as they are,
    and workers refuse them. Pickles are read with a restricted unpickler: nothing they
    name is imported or called.
    """
    from taskkit.legacy import convert

    found = convert(load_registry(config_path), list(queues) or None, dry_run=dry_run)
    for item in found:
        click.echo(str(item))
    converted = sum(item.outcome == "converted" for item in found)
    click.echo(
        f"{'dry run: ' if dry_run else ''}{converted} "
        f"{'to convert' if dry_run else 'converted'}, {len(found) - converted} left"
    )


COMMANDS = [legacy]


__all__ = ["COMMANDS", "legacy"]
