"""What a team that already uses rq-scheduler has: its own job functions and job class.

Used by tests/test_schedules_foreign.py and tests/test_schedules_imports.py: the
``rqscheduler`` process those tests start imports this module (``--path``), and the
entries they create through rq-scheduler's API name these functions.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer


class JSONJob(Job):
    """A job class that stores jobs as JSON (``rqscheduler --job-class rqschedapp.JSONJob``).

    rq-scheduler has no serializer option: its job class decides.
    """

    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None):
        super().__init__(id, connection=connection, serializer=JSONSerializer)


def foreign_tick(n: int = 0) -> int:
    """A job of the team's own rq-scheduler schedules; does nothing."""
    return n


def send_report(kind: str, recipients: list[str] | None = None) -> str:
    """A job that `taskkit schedules import` turns into a jobs.yaml entry."""
    return f"{kind} to {recipients or []}"
