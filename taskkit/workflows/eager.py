"""Eager mode: the whole workflow runs at once, step after step, in the caller.

The same checks as a real start (inputs, every job's arguments), then each job runs as
an eager job does (:func:`taskkit.eager.run_eagerly`: a serializer round trip of its
arguments, the caller's app context), in dependency order, with the same rules as in
a worker: after a failed or skipped step, a step with ``on_failure: skip`` is skipped
and one with ``on_failure: run`` runs. A failing job does not raise here: the run's
``status()`` is ``failed`` and :meth:`EagerRun.errors` holds each failure's traceback.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskkit.eager import run_eagerly
from taskkit.workflows.plan import PlannedStep, fanned_upstream, upstream_problem
from taskkit.workflows.runs import StepView, prepared_steps, run_status
from taskkit.workflows.store import JobState

if TYPE_CHECKING:
    from taskkit.registry import Registry


class EagerRun:
    """A run that already happened, in memory (see :class:`taskkit.workflows.runs.Run`)."""

    def __init__(self, run_id: str, workflow: str) -> None:
        self.id = run_id
        self.workflow = workflow
        self._steps: list[StepView] = []
        self._results: dict[str, Any] = {}
        self._errors: dict[str, str] = {}

    def status(self) -> str:
        """``finished`` or ``failed``."""
        return run_status(self._steps)

    def results(self) -> dict[str, Any]:
        """Step -> its result, or the list of its jobs' results for a fanned-out step."""
        return dict(self._results)

    def steps(self) -> list[StepView]:
        """Each step with its jobs' states."""
        return list(self._steps)

    def errors(self) -> dict[str, str]:
        """Job id -> the traceback of each job that failed."""
        return dict(self._errors)


def run_workflow(registry: Registry, name: str, inputs: dict[str, Any]) -> EagerRun:
    """Run workflow ``name`` now, in this process; the finished run."""
    run = EagerRun(uuid.uuid4().hex, name)
    workflow, steps = prepared_steps(registry, name, inputs, run.id)
    outcomes: dict[str, list[Any]] = {}
    values: dict[str, list[Any]] = {}
    for step in steps:
        config = workflow.steps[step.name]
        problem = upstream_problem({u: outcomes[u] for u in config.after})
        skip = problem if problem is not None and config.on_failure == "skip" else None
        extra = {}
        if config.results is not None:
            extra[config.results] = list(values[fanned_upstream(workflow, config)[0]])
        states, results = _run_step(registry, run, step, skip, extra)
        outcomes[step.name] = [state.outcome for state in states]
        values[step.name] = results
        run._steps.append(StepView(step.name, step.job, step.count is not None, states))
        run._results[step.name] = results if step.count is not None else results[0]
    return run


def _run_step(
    registry: Registry, run: EagerRun, step: PlannedStep, skip: str | None, extra: dict[str, Any]
) -> tuple[list[JobState], list[Any]]:
    declared = registry.job(step.job)
    states: list[JobState] = []
    results: list[Any] = []
    for planned in step.jobs:
        now = datetime.now(UTC)
        if skip is not None:
            states.append(JobState(planned.id, "skipped", skip, now, None, None))
            results.append(None)
            continue
        job = run_eagerly(registry, declared, (), {**planned.kwargs, **extra}, propagate=False)
        status = str(job.get_status().value)
        if job.exc_info:
            run._errors[planned.id] = job.exc_info
        states.append(JobState(planned.id, status, None, now, job.started_at, job.ended_at))
        results.append(job.return_value() if status == "finished" else None)
    return states, results


__all__ = ["EagerRun", "run_workflow"]
