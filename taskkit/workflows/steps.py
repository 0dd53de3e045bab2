"""The worker's side of a workflow: a step checks its upstream, and a fan-in gets its list.

RQ moves a step's job to its queue once every upstream job ended, however it ended
(the run enqueued it with ``Dependency(allow_failure=True)``). When the job runs,
:func:`step_call` reads its upstream jobs' states, and the results it collects, in one
round trip: if an upstream job failed or was skipped, a step with ``on_failure: skip``
(the default) is skipped (its function is not called; the job ends "finished" with the
mark in its meta, so the steps after it are skipped in turn), and one with
``on_failure: run`` runs. A fan-in step gets the list of its fanned-out step's results,
in item order, as its ``results`` parameter (None where an item failed).

A step that waits for many jobs (a fan-in) also gets a cheaper "is my upstream done?".
RQ asks it each time one of its upstream jobs ends, and answers by reading the status of
every upstream job: N reads per item, N² for a fan-out of N. The run keeps, per such
step, the set of its upstream jobs that have not reached their end yet
(:func:`pending_key`); :func:`upstream_unfinished` takes the ending job out of it and
reads *one* job still in it: if that one has not ended, neither has the upstream, and RQ
is told "not yet" without reading the rest. Only when the set holds no job still running
does RQ read them all, as it would have. The answer only ever says "not yet" when RQ would
have too, and the job it read is WATCHed, as RQ watches all of them, so that two ends
racing each other cannot both conclude "not yet".

Only jobs whose meta holds a step pay any of this: every other job's call is the same
callable, with no Redis command added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from redis.client import Pipeline
from rq.job import Job

from taskkit.logs import escape_controls
from taskkit.workflows import store
from taskkit.workflows.plan import STEP_META, StepSpec, upstream_problem

log = logging.getLogger("taskkit.workflows")

PENDING_PREFIX = "taskkit:workflow:pending:"
# What RQ's check lets through with allow_failure (and None: a job that is gone).
_PASSES = {"finished", "failed"}


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


def pending_key(job_id: str) -> str:
    """The set of the upstream jobs of step job ``job_id`` that have not ended yet."""
    return PENDING_PREFIX + job_id


def waits_for_many(job: Job) -> bool:
    """Whether ``job`` is a workflow step with more than one upstream job (no IO)."""
    raw = job.meta.get(STEP_META)
    if raw is None:
        return False
    try:
        spec = StepSpec.from_meta(raw)
    except ValueError:
        return False
    return sum(len(ids) for _, ids in spec.upstream_ids()) > 1


def upstream_unfinished(
    job: Job, parent: Job | None, pipeline: Pipeline | None, exclude: str | None
) -> bool:
    """Whether one read shows an upstream job of ``job`` not ended (see the module).

    ``parent`` is the upstream job whose end RQ is handling; it leaves the pending set.
    True means RQ's check would say "not met" too; False: let RQ check every upstream job.
    """
    if parent is None or not waits_for_many(job):
        return False
    key = pending_key(job.id)
    with job.connection.pipeline(transaction=False) as pipe:
        pipe.srem(key, parent.id)
        pipe.srandmember(key, 3)
        sample = pipe.execute()[1]
    skip = {parent.id, exclude}
    witness = next((i for i in map(_text, sample or []) if i not in skip), None)
    if witness is None:
        return False
    witness_key = Job.key_for(witness)
    if pipeline is not None:
        # As RQ's own check: an end of the witness before our EXEC makes RQ look again.
        pipeline.watch(witness_key)  # type: ignore[no-untyped-call]
    status = (pipeline if pipeline is not None else job.connection).hget(witness_key, "status")
    return status is not None and _text(status) not in _PASSES


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["PENDING_PREFIX", "pending_key", "step_call", "upstream_unfinished", "waits_for_many"]
