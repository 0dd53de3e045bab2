"""An app whose jobs were enqueued by plain RQ before it moved to taskkit.

tests/test_legacy.py enqueues ``legacyapp.note`` (declared in its jobs.yaml) and
``legacyapp.undeclared`` (not declared) with RQ's default pickle serializer.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app


def create_app() -> Flask:
    return Flask("legacy-app")


def note(path: str, value: int) -> int:
    """Append the app this runs in and ``value`` to the file at ``path``."""
    with Path(path).open("a") as out:
        out.write(f"{current_app.name} {value}\n")
    return value


def undeclared(path: str) -> None:
    """Never to be run by a taskkit worker: its jobs.yaml does not declare it."""
    Path(path).write_text("ran")
