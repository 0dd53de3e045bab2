"""rq-scheduler beside taskkit: its live ``rqscheduler`` processes and its own entries.

taskkit keeps its schedules in a sorted set of its own
(:data:`~taskkit.schedules.store.SCHEDULED_JOBS_KEY`), so an ``rqscheduler`` on the same
database never reads them, and taskkit never fires rq-scheduler's entries. Both may run
during a migration; this module tells the commands what is there, so that ``status``,
``schedules sync`` and ``run-scheduler`` can say what it means.

An ``rqscheduler`` announces itself in ``rq:scheduler_instance:<name>``, a hash that
expires ``interval + 10`` s after its last pass and gets a ``death`` field when it stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from rq_scheduler import Scheduler as _RqScheduler

from taskkit.schedules.store import ID_PREFIX, RQ_SCHEDULER_JOBS_KEY, _text

INSTANCE_PREFIX: str = _RqScheduler.redis_scheduler_namespace_prefix
"""``rq:scheduler_instance:``: one hash per running ``rqscheduler``."""


@dataclass(frozen=True)
class Neighbours:
    """What rq-scheduler has on a database: live processes and entries of its own."""

    rq_schedulers: list[str]
    entries: int

    def note(self) -> str | None:
        """One line on what they mean for taskkit's schedules, or None if there are none."""
        if self.rq_schedulers:
            count = len(self.rq_schedulers)
            return (
                f"rq-scheduler's rqscheduler runs on this database ({count} "
                f"process{'es' if count > 1 else ''}): it fires its own {self.entries} "
                f"entr{'ies' if self.entries != 1 else 'y'} and never sees taskkit's schedules, "
                "which taskkit's schedulers fire; move its entries into jobs.yaml with "
                "`taskkit schedules import`"
            )
        if self.entries:
            return (
                f"rq-scheduler's set holds {self.entries} entr"
                f"{'ies' if self.entries != 1 else 'y'} that taskkit does not fire, and no "
                "rqscheduler runs to fire them; `taskkit schedules import` turns them into "
                "jobs.yaml schedules"
            )
        return None


def neighbours(conn: redis.Redis) -> Neighbours:
    """The live ``rqscheduler`` processes and rq-scheduler's own entries on ``conn``."""
    names = [_text(key) for key in conn.scan_iter(match=f"{INSTANCE_PREFIX}*", count=1000)]
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hexists(name, "death")
        pipe.zcard(RQ_SCHEDULER_JOBS_KEY)
        *dead, total = pipe.execute()
    # A taskkit 0.2 entry not yet moved by a sync is not rq-scheduler's own.
    ours = sum(1 for _ in conn.zscan_iter(RQ_SCHEDULER_JOBS_KEY, match=f"{ID_PREFIX}*"))
    live = [
        name.removeprefix(INSTANCE_PREFIX)
        for name, gone in zip(names, dead, strict=True)
        if not gone
    ]
    return Neighbours(sorted(live), int(total) - ours)


__all__ = ["INSTANCE_PREFIX", "Neighbours", "neighbours"]
