"""Starting what a schedule runs: its job, or a whole workflow run, on the tick's pipeline."""

from __future__ import annotations

import redis

from taskkit.config import ScheduleConfig
from taskkit.registry import Registry
from taskkit.schedules.store import (
    META_SCHEDULE,
    META_TICK,
)
from taskkit.workflows import runs


def started_field(schedule: ScheduleConfig) -> str:
    """Where a schedule's state records what its latest run started."""
    return "run_id" if schedule.workflow is not None else "job_id"


def start_run(
    registry: Registry,
    pipe: redis.client.Pipeline,
    name: str,
    schedule: ScheduleConfig,
    tick: str,
) -> str:
    """Queue schedule ``name``'s job, or its whole workflow run, on ``pipe`` (in MULTI), so
    that it is sent with the claim of the tick or not at all; the job's or run's id."""
    if schedule.workflow is not None:
        marks = {META_SCHEDULE: name, META_TICK: tick}
        prepared = runs.prepare(registry, schedule.workflow, dict(schedule.kwargs), **marks)
        prepared.write(pipe)
        return prepared.id
    declared = registry.jobs[str(schedule.job)]
    job = registry._create(declared, tuple(schedule.args), dict(schedule.kwargs))
    job.meta.update({META_SCHEDULE: name, META_TICK: tick})
    registry.queue(declared.settings.queue).enqueue_job(job, pipeline=pipe)
    return str(job.id)
