"""The operator commands: ``enqueue``, ``status`` and ``failed``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from taskkit.cli.group import TaskkitGroup
from taskkit.cli.options import config_option, load_registry
from taskkit.cli.output import plural, table
from taskkit.config import parse_duration
from taskkit.errors import TaskkitError
from taskkit.registry import Registry
from taskkit.timing import assume_utc


@click.command()
@config_option
@click.argument("name")
@click.argument("params", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--in", "delay", default=None, help="Run after this long (e.g. 30s, 5m).")
@click.option(
    "--at",
    "when",
    default=None,
    metavar="DATETIME",
    help="Run at this time, ISO 8601 (2026-12-01T09:00+01:00; without an offset: UTC).",
)
def enqueue(
    config_path: Path | None,
    name: str,
    params: tuple[str, ...],
    delay: str | None,
    when: str | None,
) -> None:
    """Enqueue job NAME; values are JSON where they parse (1, true, [1,2]), else strings."""
    if delay is not None and when is not None:
        raise click.UsageError("give --in or --at, not both")
    kwargs = dict(parse_param(p) for p in params)
    registry = load_registry(config_path)
    if delay is not None:
        job = registry.enqueue_in(timedelta(seconds=_seconds(delay, "--in")), name, **kwargs)
    elif when is not None:
        job = registry.enqueue_at(_moment(when), name, **kwargs)
    else:
        job = registry.enqueue(name, **kwargs)
    click.echo(job.id)


def _seconds(text: str, option: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 date and time; write e.g. 2026-12-01T09:00+01:00",
            param_hint="--at",
        ) from None
    return assume_utc(moment)


def parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="KEY=VALUE")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--watch",
    type=click.FloatRange(min=0.5),
    default=None,
    metavar="SECONDS",
    help="Refresh every SECONDS until Ctrl-C (with --json: one object per line).",
)
def status(config_path: Path | None, as_json: bool, watch: float | None) -> None:
    """Queues (by state), workers (host, pid, state, job) and schedules (last, next)."""
    from taskkit.status import collect

    registry = load_registry(config_path)
    if watch is None:
        current = collect(registry)
        if as_json:
            click.echo(json.dumps(current.as_dict(), indent=2))
        else:
            _print_status(current)
        return
    _watch_status(lambda: collect(registry), as_json, watch)


def _watch_status(read: Callable[[], Any], as_json: bool, interval: float) -> None:
    """Print the status every ``interval`` seconds; Ctrl-C or SIGTERM ends it with exit 0."""
    import signal
    import time

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            try:
                current = read()
            except TaskkitError as error:  # Redis went away: say so, and keep watching
                click.echo(f"error: {error}", err=True)
            else:
                _show_refresh(current, as_json, interval)
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _show_refresh(current: Any, as_json: bool, interval: float) -> None:
    if as_json:
        click.echo(json.dumps(current.as_dict()))
        return
    click.clear()
    click.echo(f"taskkit status at {current.taken_at} (every {interval:g} s; Ctrl-C stops)\n")
    _print_status(current)


def _print_status(current: Any) -> None:
    table(
        "QUEUES",
        ("name", "queued", "started", "scheduled", "deferred", "failed", "finished", "state"),
        [
            (q.name, q.queued, q.started, q.scheduled, q.deferred, q.failed, q.finished,
             "paused" if q.paused else "active")
            for q in current.queues
        ],
    )  # fmt: skip
    table(
        f"WORKERS ({len(current.workers)})",
        ("host", "pid", "state", "queues", "current job", "ok", "failed"),
        [
            (w.host or "?", w.pid or "?", w.state, ",".join(w.queues), _current_job(w),
             w.successful, w.failed)
            for w in current.workers
        ],
    )  # fmt: skip
    table(
        f"SCHEDULES (schedulers running: {len(current.schedulers)})",
        ("name", "job", "state", "last run", "outcome", "next run"),
        [
            (s.name, s.job, s.state, s.last_run or "never", s.last_outcome or "-",
             s.next_run or "-")
            for s in current.schedules
        ],
    )  # fmt: skip
    if current.limits:
        table(
            "LIMITS (jobs waiting on a limit)",
            ("kind", "key", "limit", "taken", "waiting"),
            [(lim.kind, lim.key, _or_dash(lim.limit), _or_dash(lim.taken), lim.waiting)
             for lim in current.limits],
        )  # fmt: skip
    if current.note:
        click.echo(f"note: {current.note}\n")
    click.echo(f"redis: {current.redis}")


def _or_dash(count: int) -> str:
    return "-" if count < 0 else str(count)


def _current_job(worker: Any) -> str:
    if not worker.current_job:
        return "-"
    shown = f"{worker.current_job_name or '?'} {worker.current_job}"
    return f"{shown} ({worker.current_job_progress})" if worker.current_job_progress else shown


@click.group(cls=TaskkitGroup)
def failed() -> None:
    """Failed jobs: list, show, requeue, purge (arguments with secrets hidden)."""


@failed.command("list")
@config_option
@click.option("--job", "job_name", default=None, help="Only failed runs of this job.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def failed_list(config_path: Path | None, job_name: str | None, as_json: bool) -> None:
    """Failed jobs with their name, arguments (secrets hidden) and reason."""
    from taskkit.failed import list_failed

    jobs = list_failed(load_registry(config_path), job_name)
    if as_json:
        click.echo(json.dumps([_failed_dict(j) for j in jobs], indent=2, default=str))
        return
    table(
        f"FAILED ({len(jobs)})",
        ("id", "queue", "job", "failed at", "reason"),
        [(j.id, j.queue, j.name, _when(j.failed_at), j.reason[:80]) for j in jobs],
    )


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _failed_dict(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue": job.queue,
        "job": job.name,
        "args": job.args,
        "kwargs": job.kwargs,
        "failed_at": job.failed_at.isoformat() if job.failed_at else None,
        "reason": job.reason,
        "exc_info": job.exc_info,
        "progress": job.progress.as_dict() if job.progress else None,
    }


@failed.command("show")
@config_option
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def failed_show(config_path: Path | None, job_id: str, as_json: bool) -> None:
    """One failed job in full: arguments (secrets hidden) and the whole traceback."""
    from taskkit.failed import get_failed

    job = get_failed(load_registry(config_path), job_id)
    if job is None:
        raise click.ClickException(f"no failed job {job_id!r}; see `taskkit failed list`")
    if as_json:
        click.echo(json.dumps(_failed_dict(job), indent=2, default=str))
        return
    click.echo(f"id:      {job.id}\njob:     {job.name}\nqueue:   {job.queue}")
    click.echo(f"failed:  {job.failed_at.isoformat() if job.failed_at else '-'}")
    click.echo(f"args:    {json.dumps(job.args, default=str)}")
    click.echo(f"kwargs:  {json.dumps(job.kwargs, default=str)}")
    if job.progress is not None:
        click.echo(f"progress: {job.progress} (reported {_when(job.progress.at)})")
    click.echo("\n" + (job.exc_info.rstrip() or "(no exception recorded)"))


def _pick_failed(
    registry: Registry, job_ids: tuple[str, ...], job_name: str | None, everything: bool
) -> list[str] | None:
    """The ids chosen by IDs, --job NAME or --all (None: all of them)."""
    from taskkit.failed import list_failed

    if sum(bool(x) for x in (job_ids, job_name, everything)) != 1:
        raise click.UsageError("give job ids, or --job NAME, or --all (one of them)")
    if job_ids:
        return list(job_ids)
    if job_name is not None:
        return [j.id for j in list_failed(registry, job_name)]
    return None


@failed.command("requeue")
@config_option
@click.argument("job_ids", nargs=-1)
@click.option("--job", "job_name", default=None, help="Requeue every failed run of this job.")
@click.option("--all", "everything", is_flag=True, help="Requeue every failed job.")
def failed_requeue(
    config_path: Path | None, job_ids: tuple[str, ...], job_name: str | None, everything: bool
) -> None:
    """Put failed jobs back on their queues: by ID, by --job NAME, or --all."""
    from taskkit.failed import list_failed, requeue

    registry = load_registry(config_path)
    ids = _pick_failed(registry, job_ids, job_name, everything)
    if ids is None:
        ids = [j.id for j in list_failed(registry)]
    done = requeue(registry, ids)
    click.echo(f"requeued {plural(len(done))}")
    missing = [job_id for job_id in ids if job_id not in done]
    if missing:
        raise click.ClickException(f"not in a failed registry: {', '.join(missing)}")


@failed.command("purge")
@config_option
@click.argument("job_ids", nargs=-1)
@click.option("--job", "job_name", default=None, help="Delete every failed run of this job.")
@click.option("--all", "everything", is_flag=True, help="Delete every failed job (the default).")
@click.option("--yes", is_flag=True, help="Do not ask before deleting all of them.")
def failed_purge(
    config_path: Path | None,
    job_ids: tuple[str, ...],
    job_name: str | None,
    everything: bool,
    yes: bool,
) -> None:
    """Delete failed jobs: by ID, by --job NAME, or all of them (asks first unless --yes)."""
    from taskkit.failed import purge

    registry = load_registry(config_path)
    everything = everything or not (job_ids or job_name)
    ids = _pick_failed(registry, job_ids, job_name, everything)
    if ids is None and not yes:
        click.confirm("delete every failed job?", abort=True)
    deleted = purge(registry, ids)
    click.echo(f"deleted {plural(len(deleted), 'failed job')}")
    missing = [job_id for job_id in job_ids if job_id not in deleted]
    if missing:
        raise click.ClickException(f"not in a failed registry: {', '.join(missing)}")


COMMANDS = [enqueue, status, failed]
"""This module's commands, added to the ``taskkit`` group by :mod:`taskkit.cli.root`."""

__all__ = ["COMMANDS", "enqueue", "failed", "status"]
