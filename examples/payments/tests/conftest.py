"""Fixtures for the payments tests: a test app on a test database, in eager mode.

The app context fixture is the one from the "Working outside of application context"
write-up; with taskkit, jobs enqueued inside it run at once, in it, against the test
database, and need no Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from payments.app import create_app

JOBS_YAML = Path(__file__).resolve().parents[3] / "jobs.yaml"


@pytest.fixture(autouse=True)
def _no_production_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should anything build the production app, it gets a throwaway database."""
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", f"sqlite:///{tmp_path / 'production.sqlite'}")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """The app on a test database of its own; taskkit in eager mode."""
    return create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test.sqlite'}",
        TASKKIT_CONFIG=str(JOBS_YAML),
        TASKKIT_EAGER=True,
    )


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


@pytest.fixture
def taskkit_config_path() -> Path:
    """For the plugin's taskkit_registry: this example's jobs.yaml, wherever pytest runs."""
    return JOBS_YAML
