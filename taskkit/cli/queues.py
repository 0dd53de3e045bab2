"""``taskkit queues list|pause|resume|drain`` and ``taskkit dashboard``: what operators
act on. Thin, as every command: one call each."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import click

from taskkit.cli.group import TaskkitGroup
from taskkit.cli.options import config_option, duration, load_registry
from taskkit.cli.output import table


@click.group(cls=TaskkitGroup)
def queues() -> None:
    """Pause, resume and drain queues; list them with their counts."""


@queues.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def queues_list(config_path: Path | None, as_json: bool) -> None:
    """Each declared queue, in priority order: paused or not, and its jobs by state."""
    from taskkit.status import collect

    found = collect(load_registry(config_path)).queues
    if as_json:
        click.echo(json.dumps([vars(q) for q in found], indent=2))
        return
    counts = ("queued", "started", "scheduled", "deferred", "failed", "finished")
    table(
        "QUEUES (priority order)",
        ("name", "state", *counts),
        [
            (q.name, "paused" if q.paused else "active", *(str(getattr(q, c)) for c in counts))
            for q in found
        ],
    )


@queues.command("pause")
@config_option
@click.argument("name")
def queues_pause(config_path: Path | None, name: str) -> None:
    """Stop every worker (all hosts) taking jobs from NAME; its jobs stay queued."""
    from taskkit.queues import RECHECK_EVERY, pause

    changed = pause(load_registry(config_path), name)
    if changed:
        click.echo(
            f"paused queue {name}: workers leave its jobs within {2 * RECHECK_EVERY:g} s "
            f"(a running job finishes); `taskkit queues resume {name}` undoes it"
        )
    else:
        click.echo(f"queue {name} was paused already")


@queues.command("resume")
@config_option
@click.argument("name")
def queues_resume(config_path: Path | None, name: str) -> None:
    """Let workers take jobs from NAME again."""
    from taskkit.queues import resume

    changed = resume(load_registry(config_path), name)
    click.echo(f"resumed queue {name}" if changed else f"queue {name} was not paused")


@queues.command("drain")
@config_option
@click.argument("name")
@click.option(
    "--timeout",
    callback=duration,
    default="10m",
    show_default=True,
    metavar="DURATION",
    help="Give up (exit 1) if the queue is not drained by then.",
)
def queues_drain(config_path: Path | None, name: str, timeout: int) -> None:
    """Wait until NAME is empty and none of its jobs runs (e.g. before a deploy)."""
    from taskkit.queues import drain

    took = drain(load_registry(config_path), name, timeout=timeout)
    click.echo(f"queue {name} is drained (waited {took:.1f} s)")


@click.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=9181, show_default=True)
@click.option(
    "--token",
    envvar="TASKKIT_DASHBOARD_TOKEN",
    default=None,
    help="Required off loopback: the password (any user name) or Bearer token people "
    "need [default: $TASKKIT_DASHBOARD_TOKEN; prefer it: `ps` shows command lines].",
)
def dashboard(config_path: Path | None, host: str, port: int, token: str | None) -> None:
    """Serve the dashboard alone (waitress if installed, else Flask's server)."""
    from taskkit.dashboard import server

    server.check_binding(host, token or None)
    registry = load_registry(config_path)
    app = server.create_app(registry, token=token or None)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"taskkit dashboard for {registry.path} on http://{shown}:{port}/ "
        f"({server.server_name()}{', token required' if token else ''}); Ctrl-C stops it",
        err=True,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve(app, host, port)
    except KeyboardInterrupt:
        return


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


COMMANDS = [queues, dashboard]


__all__ = ["COMMANDS", "dashboard", "queues"]
