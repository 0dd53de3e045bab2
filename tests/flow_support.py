"""Helpers for the flow-control tests (tests/test_flow_*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

FLOW_JOBS = Path(__file__).resolve().parent / "apps" / "flowapps" / "jobs.yaml"
EVENTS = "flow:events"


def events(connection: redis.Redis, job: str | None = None) -> list[dict[str, Any]]:
    """What the jobs of tests/apps/flowapps/flowjobs.py recorded, oldest first."""
    found = [json.loads(raw) for raw in connection.lrange(EVENTS, 0, -1)]
    return [event for event in found if job is None or event["job"] == job]
