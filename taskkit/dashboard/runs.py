"""What the dashboard shows of workflow runs, read with :mod:`taskkit.workflows.runs`'s
readers: recent runs with their status, and one run's steps with each job's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from taskkit import connection
from taskkit.errors import WorkflowError
from taskkit.registry import Registry
from taskkit.workflows import runs
from taskkit.workflows.store import JobState

RECENT_RUNS = 50


@dataclass(frozen=True)
class RunRow:
    """A run in the list: its workflow, when it started, where it stands, its size."""

    id: str
    workflow: str
    created_at: datetime | None
    status: str
    steps: int
    jobs: int
    ended: int
    schedule: str | None


@dataclass(frozen=True)
class JobRow:
    """One job of a step: RQ's state, why it was skipped, how long it waited and ran."""

    state: JobState
    waited: float | None
    took: float | None


@dataclass(frozen=True)
class StepRow:
    """One step of a run and its jobs (one, or one per item of a fan-out)."""

    name: str
    job: str
    fanned: bool
    jobs: list[JobRow]


@dataclass(frozen=True)
class RunPage:
    """One run: its row and its steps in dependency order."""

    run: RunRow
    steps: list[StepRow]


def recent_runs(registry: Registry, limit: int = RECENT_RUNS) -> list[RunRow]:
    """The newest runs still in Redis, each with its status (one read per run)."""

    def read() -> list[RunRow]:
        return [_row(run, run.steps()) for run in runs.recent(registry, limit=limit)]

    return connection.call(registry.redis_url, "read workflow runs", read)


def run_page(registry: Registry, run_id: str) -> RunPage | None:
    """Run ``run_id`` with its steps' jobs; None if Redis has no such run (any more)."""

    def read() -> RunPage | None:
        try:
            run = runs.fetch(registry, run_id)
        except WorkflowError:
            return None
        views = run.steps()
        steps = [
            StepRow(view.name, view.job, view.fanned, [_job_row(job) for job in view.jobs])
            for view in views
        ]
        return RunPage(_row(run, views), steps)

    return connection.call(registry.redis_url, "read a workflow run", read)


def _row(run: runs.WorkflowRun, views: list[runs.StepView]) -> RunRow:
    jobs = [job for view in views for job in view.jobs]
    return RunRow(
        id=run.id,
        workflow=run.workflow,
        created_at=run.created_at,
        status=runs.run_status(views),
        steps=len(views),
        jobs=len(jobs),
        ended=sum(1 for job in jobs if job.ended),
        schedule=run.schedule,
    )


def _job_row(state: JobState) -> JobRow:
    return JobRow(
        state,
        _seconds(state.enqueued_at, state.started_at),
        _seconds(state.started_at, state.ended_at),
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


__all__ = ["JobRow", "RunPage", "RunRow", "StepRow", "recent_runs", "run_page"]
