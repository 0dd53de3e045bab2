"""Before: hand-written RQ (docs/migrating.md), as the example's test replays it.

The old ``reports.py`` opened with ``app = create_app(); app.app_context().push()`` at
module level (one context, shared by every job of the worker for ever) and the worker
was ``rq worker reports default``. Its producers enqueued by import path, pickled:
"""

from __future__ import annotations

from redis import Redis
from rq import Queue


def enqueue_old_style(redis: Redis) -> str:
    """Queue a job as the old code did: by import path, RQ's default pickle serializer."""
    job = Queue("default", connection=redis).enqueue(
        "migrating.reports.send_report", "weekly", ["ops@example.com"]
    )
    return str(job.id)
