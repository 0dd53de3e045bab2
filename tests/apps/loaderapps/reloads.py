"""A job module in the classic RQ style: it builds the app at import, and the app's
factory loads jobs.yaml (as ``TaskKit(app)`` does), the one being loaded."""

from __future__ import annotations

import os

import taskkit

REGISTRY = taskkit.load(os.environ["TASKKIT_TEST_RELOAD_CONFIG"])


def run() -> None:
    """Never reached: importing the module fails."""
