"""``taskkit schedules``: sync the file's schedules to Redis, list them, run one now."""

from __future__ import annotations

from pathlib import Path

import click

from taskkit.cli.group import TaskkitGroup
from taskkit.cli.options import config_option, load_registry
from taskkit.cli.output import schedule_form
from taskkit.registry import Registry


@click.group(cls=TaskkitGroup)
def schedules() -> None:
    """Recurring schedules: sync them to Redis, list them."""


@schedules.command("sync")
@config_option
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def schedules_sync(config_path: Path | None, dry_run: bool) -> None:
    """Make Redis match the schedules in jobs.yaml (create, update, remove)."""
    from taskkit.schedules import sync

    registry = load_registry(config_path)
    changes = sync(registry, dry_run=dry_run)
    for change in changes:
        click.echo(str(change))
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "remove")}
    summary = ", ".join(f"{n} to {a}" if dry_run else f"{n} {a}d" for a, n in counts.items())
    click.echo(("dry run: " if dry_run else "") + (summary if changes else "no schedules"))
    _note_rq_scheduler(registry)


def _note_rq_scheduler(registry: Registry) -> None:
    from taskkit import connection
    from taskkit.schedules.foreign import neighbours

    found = connection.call(
        registry.redis_url, "look for rq-scheduler", lambda: neighbours(registry.connection)
    )
    note = found.note()
    if note:
        click.echo(f"note: {note}")


@schedules.command("import")
@config_option
@click.option("--remove", is_flag=True, help="Delete the entries the file holds and Redis synced.")
@click.option("--yes", is_flag=True, help="With --remove: do not ask first.")
def schedules_import(config_path: Path | None, remove: bool, yes: bool) -> None:
    """Print rq-scheduler's entries as jobs.yaml schedules (flagging what cannot be said).

    Paste the text into jobs.yaml, run `schedules sync`, then `schedules import --remove`
    deletes the rq-scheduler entries that the file now holds and Redis has synced.
    """
    from taskkit import connection
    from taskkit.schedules import imports

    registry = load_registry(config_path)
    plan = connection.call(registry.redis_url, "read rq-scheduler", lambda: imports.read(registry))
    if not remove:
        click.echo(plan.yaml(), nl=False)
        return
    done = imports.removable(registry, plan)
    for entry in done:
        click.echo(f"imported as {entry.in_file}: rq-scheduler entry {entry.entry_id}")
    if done and not yes:
        click.confirm(f"Delete these {len(done)} rq-scheduler entries?", abort=True)
    removed = connection.call(
        registry.redis_url, "remove rq-scheduler entries", lambda: imports.remove(registry, done)
    )
    click.echo(
        f"removed {removed}; left {len(plan.entries) - len(done)} (not in the file, or not synced)"
    )


@schedules.command("run")
@config_option
@click.argument("name")
@click.option("--force", is_flag=True, help="Run even while the last run is queued or running.")
def schedules_run(config_path: Path | None, name: str, force: bool) -> None:
    """Enqueue schedule NAME's job now (or start its workflow); prints the job (or run) id.

    The next tick stays when it was. With overlap: skip, a tick due while this run is
    queued or running is skipped, and this command refuses while the last run is.
    """
    from taskkit.schedules import run_now

    click.echo(run_now(load_registry(config_path), name, force=force))


@schedules.command("list")
@config_option
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1, max=50),
    default=3,
    show_default=True,
    help="How many next run times to show.",
)
def schedules_list(config_path: Path | None, count: int) -> None:
    """Each schedule with its next runs (its timezone and UTC), last run and state."""
    from taskkit.schedules import describe

    registry = load_registry(config_path)
    for view in describe(registry, count=count):
        schedule = view.schedule
        runs = f"workflow={schedule.workflow}" if schedule.workflow else f"job={schedule.job}"
        click.echo(f"{view.name}  [{view.state}]  {runs}  {schedule_form(schedule)}")
        if view.stored_next is not None and view.stored_next not in view.upcoming:
            click.echo(f"    due   {view.stored_next.isoformat()} (stored in Redis)")
        for moment in view.upcoming:
            local = moment.astimezone(schedule.tz)
            click.echo(
                f"    next  {local.isoformat()}  ({moment.strftime('%Y-%m-%d %H:%M:%S')} UTC)"
            )
        if view.last_run is not None:
            job = f" job {view.last['job_id']}" if view.last.get("job_id") else ""
            click.echo(
                f"    last  {view.last_run.isoformat()} {view.last.get('outcome', '?')}{job}"
            )
        else:
            click.echo("    last  never")


__all__ = ["schedules"]
