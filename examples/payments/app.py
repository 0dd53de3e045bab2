"""The application factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from taskkit.flask import TaskKit

from .db import db
from .views import bp

# Incremented on every create_app() call: tests use it (and PAYMENTS_FACTORY_LOG, which
# also works across processes) to check that a worker builds its app once, not per job.
FACTORY_CALLS = 0

# The repository root, where the example's jobs.yaml lives.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ProductionConfig:
    """Settings for the real app (and for taskkit workers)."""

    TESTING = False
    SQLALCHEMY_DATABASE_URI: str | None = None  # PAYMENTS_DATABASE_URL, else the instance dir


class TestingConfig(ProductionConfig):
    """Settings for tests: an in-memory database unless the test passes its own."""

    TESTING = True
    # Deliberately not PAYMENTS_DATABASE_URL: tests must never reach a real database.
    SQLALCHEMY_DATABASE_URI = "sqlite://"


CONFIGS: dict[str, type[ProductionConfig]] = {
    "production": ProductionConfig,
    "testing": TestingConfig,
}


def create_app(config_name: str = "production", **overrides: Any) -> Flask:
    """Build the payments app; ``overrides`` are config keys that win over everything."""
    global FACTORY_CALLS  # noqa: PLW0603 -- a process-wide counter is the point
    FACTORY_CALLS += 1
    _append_line("PAYMENTS_FACTORY_LOG", f"{os.getpid()}\n")

    if config_name not in CONFIGS:
        raise ValueError(
            f"unknown config_name {config_name!r}; use one of: {', '.join(sorted(CONFIGS))}"
        )
    app = Flask(__name__)
    app.config.from_object(CONFIGS[config_name])
    app.config.update(overrides)
    if app.config["SQLALCHEMY_DATABASE_URI"] is None:
        app.config["SQLALCHEMY_DATABASE_URI"] = _default_database_url(app)
    # So the extension finds jobs.yaml whatever the working directory is.
    app.config.setdefault(
        "TASKKIT_CONFIG", os.environ.get("TASKKIT_CONFIG") or str(_PROJECT_ROOT / "jobs.yaml")
    )

    db.init_app(app)
    app.register_blueprint(bp)
    TaskKit(app)
    with app.app_context():
        db.create_all()
    # Registered after create_all() so that the log counts only contexts pushed later (jobs).
    app.teardown_appcontext(_log_teardown)
    return app


def _default_database_url(app: Flask) -> str:
    url = os.environ.get("PAYMENTS_DATABASE_URL")
    if url:
        return url
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{instance / 'payments.sqlite'}"


def _log_teardown(exc: BaseException | None) -> None:
    outcome = "ok" if exc is None else type(exc).__name__
    _append_line("PAYMENTS_TEARDOWN_LOG", f"{os.getpid()} {outcome}\n")


def _append_line(env_var: str, line: str) -> None:
    path = os.environ.get(env_var)
    if path:
        with Path(path).open("a", encoding="utf-8") as log:
            log.write(line)
