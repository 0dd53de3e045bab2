"""``taskkit workflows start|show|list``: thin commands over :mod:`taskkit.workflows`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from taskkit.cli.group import TaskkitGroup
from taskkit.cli.ops import parse_param
from taskkit.cli.options import config_option, load_registry
from taskkit.cli.output import table


@click.group(cls=TaskkitGroup)
def workflows() -> None:
    """Workflows: start a run, show where a run stands, list recent runs."""


@workflows.command("start")
@config_option
@click.argument("name")
@click.argument("params", nargs=-1, metavar="[KEY=VALUE]...")
def workflows_start(config_path: Path | None, name: str, params: tuple[str, ...]) -> None:
    """Start a run of workflow NAME with its inputs (values are JSON where they parse,
    e.g. shards='["a","b"]', else strings); prints the run id."""
    inputs = dict(parse_param(p) for p in params)
    click.echo(load_registry(config_path).start_workflow(name, **inputs).id)


@workflows.command("show")
@config_option
@click.argument("run_id")
def workflows_show(config_path: Path | None, run_id: str) -> None:
    """Each step of run RUN_ID with its jobs: status, and when they started and ended."""
    from taskkit.workflows.runs import run_status

    run = load_registry(config_path).workflow_run(run_id)
    steps = run.steps()
    click.echo(f"run {run.id}  workflow {run.workflow}  {run_status(steps)}")
    rows = []
    for step in steps:
        for job in step.jobs:
            timing = _job_timing(job.started_at, job.ended_at)
            note = f"  ({job.note})" if job.note else ""
            rows.append(
                (step.name, step.job, str(len(step.jobs)), job.id, job.status + note, timing)
            )
    table("", ("step", "job", "jobs", "id", "status", "ran"), rows)


def _job_timing(started: datetime | None, ended: datetime | None) -> str:
    if started is None:
        return "-"
    if ended is None:
        return f"since {started.strftime('%H:%M:%S')}"
    return f"{started.strftime('%H:%M:%S')} {(ended - started).total_seconds():.2f}s"


@workflows.command("list")
@config_option
@click.option("--workflow", default=None, help="Only the runs of this workflow.")
@click.option("-n", "--count", type=click.IntRange(min=1), default=20, show_default=True)
def workflows_list(config_path: Path | None, workflow: str | None, count: int) -> None:
    """The runs still kept in Redis, newest first, with their status."""
    from taskkit.workflows.runs import recent

    rows = [
        (run.id, run.workflow, run.status(), run.created_at.isoformat() if run.created_at else "?")
        for run in recent(load_registry(config_path), workflow, count)
    ]
    table("RUNS", ("id", "workflow", "status", "started"), rows)


COMMANDS = [workflows]


__all__ = ["COMMANDS", "workflows"]
