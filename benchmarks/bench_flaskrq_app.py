"""The payments example app with Flask-RQ 1.0 installed, for ``flask rq worker``.

``python -m flask --app bench_flaskrq_app:create_app rq worker`` is how a Flask-RQ user
runs its worker. Its queues use ``$REDIS_URL``; jobs are enqueued by the benchmark as
``payments.jobs.noop``, so both tools run the same function in the same app.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_rq import RQ  # type: ignore[import-not-found]

from payments.app import create_app as create_payments_app


def create_app() -> Flask:
    """The payments app (as its own factory builds it) with Flask-RQ on ``$REDIS_URL``."""
    app = create_payments_app()
    app.config["RQ_CONNECTION"] = os.environ["REDIS_URL"]
    app.config["RQ_QUEUES"] = ["default"]
    RQ(app)
    return app
