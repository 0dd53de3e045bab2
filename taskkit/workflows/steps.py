"""The worker's side of a workflow: a step checks its upstream, and a fan-in gets its list.

RQ moves a step's job to its queue once every upstream job ended, however it ended
(the run enqueued it with ``Dependency(allow_failure=True)``). When the job runs,
:func:`step_call` reads its upstream jobs' states, and the results it collects, in one
round trip: if an upstream job failed or was skipped, a step with ``on_failure: skip``
(the default) is skipped (its function is not called; the job ends "finished" with the
mark in its meta, so the steps after it are skipped in turn), and one with
``on_failure: run`` runs. A fan-in step gets the list of its fanned-out step's results,
in item order, as its ``results`` parameter (None where an item failed).

Only jobs whose meta holds a step pay any of this: every other job's call is the same
callable, with no Redis command added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from rq.job import Job

from taskkit.logs import escape_controls
from taskkit.workflows import store
from taskkit.workflows.plan import STEP_META, StepSpec, upstream_problem

log = logging.getLogger("taskkit.workflows")


def step_call(job: Job, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` itself for a job that is no workflow step; else ``call`` behind the
    step's upstream check and fan-in (see the module)."""
    if STEP_META not in job.meta:
        return call
    return partial(_run_step, job, call)


def _run_step(job: Job, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    spec = StepSpec.from_meta(job.meta[STEP_META])
    upstream, collected = _read_upstream(job, spec)
    problem = upstream_problem(upstream)
    if problem is not None and spec.on_failure == "skip":
        _skip(job, spec, problem)
        return None
    if spec.results is not None:
        kwargs[spec.results[0]] = collected
    return call(*args, **kwargs)


def _read_upstream(job: Job, spec: StepSpec) -> tuple[dict[str, list[Any]], list[Any]]:
    """Each upstream step's job outcomes and the results the step collects: one round trip."""
    upstream = spec.upstream_ids()
    every = [i for _, ids in upstream for i in ids]
    gathered: list[str] = []
    if spec.results is not None:
        gathered = next((ids for step, ids in upstream if step == spec.results[1]), [])
    with job.connection.pipeline(transaction=False) as pipe:
        store.ask_states(pipe, every)
        store.ask_results(pipe, gathered)
        replies = pipe.execute()
    found = iter(store.states(every, replies[: len(every)], job.serializer))
    outcomes = {step: [next(found).outcome for _ in ids] for step, ids in upstream}
    values = store.results(gathered, replies[len(every) :], job.connection, job.serializer)
    return outcomes, values


def _skip(job: Job, spec: StepSpec, problem: str) -> None:
    """Mark the job skipped (in its meta, which RQ keeps) and say so in the log."""
    job.meta[STEP_META] = {**job.meta[STEP_META], "skipped": problem}
    job.save_meta()  # type: ignore[no-untyped-call]
    log.info(
        "workflow %s run %s: step %s skipped (%s); id=%s",
        escape_controls(spec.workflow),
        spec.run,
        escape_controls(spec.step),
        escape_controls(problem),
        job.id,
        extra={"job_id": job.id, "outcome": "skipped"},
    )


__all__ = ["step_call"]
