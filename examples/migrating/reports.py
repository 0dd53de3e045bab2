"""Job functions after the move: plain functions, no context code (docs/migrating.md)."""

from __future__ import annotations

from flask import current_app


def send_report(kind: str, recipients: list[str]) -> str:
    """Runs with ``context: app``: current_app is the worker's app, built once."""
    sender = current_app.config["REPORT_SENDER"]
    return f"{kind} report from {sender} to {', '.join(recipients)}"
