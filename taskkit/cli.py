"""The ``taskkit`` command line (also ``flask taskkit``).

Thin on purpose: each command loads the registry and calls one function. Errors are
turned into one line on stderr and a non-zero exit here, at the edge, and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from taskkit import __version__
from taskkit.config import format_duration, parse_duration
from taskkit.errors import ConfigError, TaskkitError
from taskkit.logs import setup_logging
from taskkit.registry import Registry, default_config_path, load
from taskkit.timing import next_fire_times

if TYPE_CHECKING:
    from taskkit.schedules.process import BackgroundScheduler

F = TypeVar("F", bound=Callable[..., Any])


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


def _config_path(path: Path | None) -> Path:
    if path is not None:
        return path
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, dict) and "default_config" in ctx.obj:
            return Path(ctx.obj["default_config"])
        ctx = ctx.parent
    return default_config_path()


def _registry(path: Path | None) -> Registry:
    return load(_config_path(path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="taskkit")
def cli() -> None:
    """taskkit: declarative background and recurring jobs for Flask on RQ."""


@cli.command()
@config_option
def validate(config_path: Path | None) -> None:
    """Check jobs.yaml: syntax, keys, references, and that every func imports."""
    registry = _registry(config_path)
    config = registry.config
    click.echo(
        f"{registry.path}: OK ({len(config.jobs)} jobs, {len(registry.queue_names)} queues, "
        f"{len(config.schedules)} schedules)"
    )


@cli.command("list")
@config_option
def list_(config_path: Path | None) -> None:
    """Show jobs with their effective settings, queues, and schedules with next runs."""
    registry = _registry(config_path)
    rows = [
        (
            job.name,
            job.settings.queue,
            job.settings.context,
            format_duration(job.settings.timeout),
            _retry_text(job.settings.retry.max, job.settings.retry.intervals),
            job.settings.func,
        )
        for job in registry.jobs.values()
    ]
    _table("JOBS", ("name", "queue", "context", "timeout", "retry", "func"), rows)
    counts: dict[str, int] = {}
    for job in registry.jobs.values():
        counts[job.settings.queue] = counts.get(job.settings.queue, 0) + 1
    _table(
        "QUEUES (priority order)",
        ("name", "jobs"),
        [(name, str(counts.get(name, 0))) for name in registry.queue_names],
    )
    now = datetime.now(UTC)
    schedule_rows = []
    for name, schedule in registry.config.schedules.items():
        upcoming = next_fire_times(schedule, now, 1) if schedule.enabled else []
        when = upcoming[0].astimezone(schedule.tz).isoformat() if upcoming else "-"
        schedule_rows.append((name, schedule.target, _form(schedule), when))
    _table("SCHEDULES", ("name", "job", "when", "next run"), schedule_rows)
    click.echo(f"redis: {registry.redis_url}")


def _retry_text(count: int, intervals: Sequence[int]) -> str:
    if count <= 0:
        return "no"
    waits = ", ".join(format_duration(i) for i in intervals) if intervals else "at once"
    return f"{count}x ({waits})"


def _form(schedule: Any) -> str:
    if schedule.cron is not None:
        return f"cron {schedule.cron} {schedule.timezone}"
    if schedule.every is not None:
        return f"every {format_duration(schedule.every)}"
    return f"at {schedule.at.isoformat()}"


def _table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = list(rows)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    click.echo(title)
    for row in (header, *rows):
        click.echo(
            "  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    click.echo()


@cli.command()
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


@cli.command()
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
    kwargs = dict(_parse_param(p) for p in params)
    registry = _registry(config_path)
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
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="KEY=VALUE")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
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
            callback=_duration,
            default=None,
            metavar="DURATION",
            help=f"{text} [default: worker.{name} in jobs.yaml, else {default}]",
        )(func)
    return func


@cli.command("run-worker")
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
    with the default settings below; see "Reliability and security" in the README.
    """
    from taskkit.worker import exit_on_stop_signals
    from taskkit.worker import run_worker as run

    if processes > 1 and max_jobs is not None:
        raise click.UsageError("--max-jobs works with --processes 1 only (RQ's pool has no limit)")
    if processes == 1:
        exit_on_stop_signals()  # until the worker starts: loading and the app take a while
    registry = _registry(config_path)
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
        _exit_at_the_next_stop_signal()


def _exit_at_the_next_stop_signal() -> None:
    """A long-running command has stopped: a further SIGTERM/SIGINT ends it at once, with
    the exit status it is leaving with, and never as a death by signal.

    The app may leave a thread running that delays the interpreter's exit: a signal
    then exits at once (``os._exit``). Once Python runs its exit handlers it resets the
    handlers it installed to the default one, so a signal a process manager repeats then
    would turn a clean exit 0 into "killed by SIGTERM": from there on they are ignored.
    """
    import atexit
    import contextlib
    import signal

    code = 0 if sys.exc_info()[0] is None else 1

    def exit_now(signum: int, frame: Any) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, RuntimeError, ValueError):  # closed, or busy
                stream.flush()
        os._exit(code)

    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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


@cli.command("run-scheduler")
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
    callback=_duration,
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

    registry = _registry(config_path)
    setup_logging(log_level, log_format)  # type: ignore[arg-type]
    timeout = redis_timeout if redis_timeout is not None else registry.config.worker.redis_timeout
    try:
        run(registry, interval=interval, burst=burst, redis_timeout=timeout)
    finally:
        _exit_at_the_next_stop_signal()


@cli.group()
def schedules() -> None:
    """Recurring schedules: sync them to Redis, list them."""


@schedules.command("sync")
@config_option
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
def schedules_sync(config_path: Path | None, dry_run: bool) -> None:
    """Make Redis match the schedules in jobs.yaml (create, update, remove)."""
    from taskkit.schedules import sync

    changes = sync(_registry(config_path), dry_run=dry_run)
    for change in changes:
        click.echo(str(change))
    counts = {a: sum(c.action == a for c in changes) for a in ("create", "update", "remove")}
    summary = ", ".join(f"{n} to {a}" if dry_run else f"{n} {a}d" for a, n in counts.items())
    click.echo(("dry run: " if dry_run else "") + (summary if changes else "no schedules"))


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

    click.echo(run_now(_registry(config_path), name, force=force))


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

    registry = _registry(config_path)
    for view in describe(registry, count=count):
        schedule = view.schedule
        runs = f"workflow={schedule.workflow}" if schedule.workflow else f"job={schedule.job}"
        click.echo(f"{view.name}  [{view.state}]  {runs}  {_form(schedule)}")
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


@cli.command()
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

    registry = _registry(config_path)
    worker_args = ("--worker-class", worker_class, "--log-level", log_level)
    runner = DevRunner(
        registry,
        poll=poll,
        worker_args=(*worker_args, "--log-format", log_format),
        echo=click.echo,
    )
    sys.exit(runner.run())


@cli.command()
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

    registry = _registry(config_path)
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
    _table(
        "QUEUES",
        ("name", "queued", "started", "scheduled", "deferred", "failed", "finished", "state"),
        [
            (q.name, q.queued, q.started, q.scheduled, q.deferred, q.failed, q.finished,
             "paused" if q.paused else "active")
            for q in current.queues
        ],
    )  # fmt: skip
    _table(
        f"WORKERS ({len(current.workers)})",
        ("host", "pid", "state", "queues", "current job", "ok", "failed"),
        [
            (w.host or "?", w.pid or "?", w.state, ",".join(w.queues), _current_job(w),
             w.successful, w.failed)
            for w in current.workers
        ],
    )  # fmt: skip
    _table(
        f"SCHEDULES (schedulers running: {len(current.schedulers)})",
        ("name", "job", "state", "last run", "outcome", "next run"),
        [
            (s.name, s.job, s.state, s.last_run or "never", s.last_outcome or "-",
             s.next_run or "-")
            for s in current.schedules
        ],
    )  # fmt: skip
    click.echo(f"redis: {current.redis}")


def _current_job(worker: Any) -> str:
    if not worker.current_job:
        return "-"
    shown = f"{worker.current_job_name or '?'} {worker.current_job}"
    return f"{shown} ({worker.current_job_progress})" if worker.current_job_progress else shown


@cli.command()
@config_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve GET /metrics on this port until stopped (without it: print them once).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
def metrics(config_path: Path | None, port: int | None, host: str) -> None:
    """Prometheus metrics of the queues, workers, jobs and schedules (all hosts)."""
    import signal

    from taskkit.metrics import make_server, render_metrics

    registry = _registry(config_path)
    if port is None:
        click.echo(render_metrics(registry)[0].decode(), nl=False)
        return
    server = make_server(registry, host, port)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"taskkit metrics: serving http://{host}:{server.server_port}/metrics", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return
    finally:
        server.server_close()


@cli.group()
def failed() -> None:
    """Failed jobs: list, show, requeue, purge (arguments with secrets hidden)."""


@failed.command("list")
@config_option
@click.option("--job", "job_name", default=None, help="Only failed runs of this job.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def failed_list(config_path: Path | None, job_name: str | None, as_json: bool) -> None:
    """Failed jobs with their name, arguments (secrets hidden) and reason."""
    from taskkit.failed import list_failed

    jobs = list_failed(_registry(config_path), job_name)
    if as_json:
        click.echo(json.dumps([_failed_dict(j) for j in jobs], indent=2, default=str))
        return
    _table(
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

    job = get_failed(_registry(config_path), job_id)
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


def _plural(count: int, noun: str = "job") -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


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

    registry = _registry(config_path)
    ids = _pick_failed(registry, job_ids, job_name, everything)
    if ids is None:
        ids = [j.id for j in list_failed(registry)]
    done = requeue(registry, ids)
    click.echo(f"requeued {_plural(len(done))}")
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

    registry = _registry(config_path)
    everything = everything or not (job_ids or job_name)
    ids = _pick_failed(registry, job_ids, job_name, everything)
    if ids is None and not yes:
        click.confirm("delete every failed job?", abort=True)
    deleted = purge(registry, ids)
    click.echo(f"deleted {_plural(len(deleted), 'failed job')}")
    missing = [job_id for job_id in job_ids if job_id not in deleted]
    if missing:
        raise click.ClickException(f"not in a failed registry: {', '.join(missing)}")


# -- workflows: thin commands over taskkit.workflows ---------------------------------------


@cli.group()
def workflows() -> None:
    """Workflows: start a run, show where a run stands, list recent runs."""


@workflows.command("start")
@config_option
@click.argument("name")
@click.argument("params", nargs=-1, metavar="[KEY=VALUE]...")
def workflows_start(config_path: Path | None, name: str, params: tuple[str, ...]) -> None:
    """Start a run of workflow NAME with its inputs (values are JSON where they parse,
    e.g. shards='["a","b"]', else strings); prints the run id."""
    inputs = dict(_parse_param(p) for p in params)
    click.echo(_registry(config_path).start_workflow(name, **inputs).id)


@workflows.command("show")
@config_option
@click.argument("run_id")
def workflows_show(config_path: Path | None, run_id: str) -> None:
    """Each step of run RUN_ID with its jobs: status, and when they started and ended."""
    run = _registry(config_path).workflow_run(run_id)
    steps = run.steps()
    from taskkit.workflows.runs import run_status

    click.echo(f"run {run.id}  workflow {run.workflow}  {run_status(steps)}")
    rows = []
    for step in steps:
        for job in step.jobs:
            timing = _job_timing(job.started_at, job.ended_at)
            note = f"  ({job.note})" if job.note else ""
            rows.append(
                (step.name, step.job, str(len(step.jobs)), job.id, job.status + note, timing)
            )
    _table("", ("step", "job", "jobs", "id", "status", "ran"), rows)


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
        for run in recent(_registry(config_path), workflow, count)
    ]
    _table("RUNS", ("id", "workflow", "status", "started"), rows)


# -- error handling at the edge ------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one message and a non-zero exit for every error, no traceback."""
    try:
        cli.main(args=argv, prog_name="taskkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(str(problem), err=True)
        count = len(error.problems)
        # Each problem line has the full path; the summary names the file briefly.
        files = sorted({Path(p.file).name for p in error.problems if p.file}) or ["jobs.yaml"]
        noun = "problem" if count == 1 else "problems"
        click.echo(f"error: {count} {noun} in {', '.join(files)}", err=True)
        sys.exit(error.exit_code)
    except TaskkitError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("TASKKIT_DEBUG"):
            raise
        click.echo(
            f"error: unexpected {type(error).__name__}: {_without_passwords(str(error))} "
            "(set TASKKIT_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)


def _without_passwords(text: str) -> str:
    """Any URL in ``text`` with its password hidden: unexpected errors may quote one."""
    import re

    from taskkit.config import redact_url

    return re.sub(r"[a-z+]+://\S+", lambda m: redact_url(m.group(0)), text)


def flask_group() -> click.Group:
    """The same commands as ``flask taskkit ...``, defaulting to the app's jobs.yaml."""
    from flask.cli import ScriptInfo

    @click.group("taskkit", help=cli.help)
    @click.pass_context
    def group(ctx: click.Context) -> None:
        app = ctx.ensure_object(ScriptInfo).load_app()
        state = app.extensions.get("taskkit")
        if state is not None:
            ctx.obj = {"default_config": str(state.registry.path)}

    for command in cli.commands.values():
        group.add_command(command)
    group.invoke = _with_clean_errors(group.invoke)  # type: ignore[method-assign,assignment]
    return group


def _with_clean_errors(invoke: Callable[[click.Context], Any]) -> Callable[[click.Context], Any]:
    def wrapped(ctx: click.Context) -> Any:
        try:
            return invoke(ctx)
        except TaskkitError as error:
            raise click.ClickException(str(error)) from None

    return wrapped


# The operator commands (queues, dashboard) live in a module of their own; importing it
# adds them to ``cli``. At the end, since it uses the options defined above.
import taskkit.cli_ops  # noqa: E402, F401

__all__ = ["cli", "flask_group", "main"]
