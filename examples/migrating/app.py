"""The app of the migration guide (docs/migrating.md), after the move to taskkit."""

from __future__ import annotations

from flask import Flask

from taskkit.flask import TaskKit


def create_app() -> Flask:
    app = Flask("reports-app")
    app.config["REPORT_SENDER"] = "reports@example.com"
    TaskKit(app)  # jobs.yaml from $TASKKIT_CONFIG, else ./jobs.yaml
    return app
