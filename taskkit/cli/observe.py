"""``taskkit metrics``: Prometheus metrics of every queue, worker, job and schedule."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from taskkit.cli.options import config_option, load_registry


@click.command()
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
    from taskkit.metrics import make_server, render_metrics

    registry = load_registry(config_path)
    if port is None:
        click.echo(render_metrics(registry)[0].decode(), nl=False)
        return
    server = make_server(registry, host, port)
    signal.signal(signal.SIGTERM, _interrupt)
    click.echo(f"taskkit metrics: serving http://{host}:{server.server_port}/metrics", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return
    finally:
        server.server_close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


COMMANDS = [metrics]


__all__ = ["COMMANDS", "metrics"]
