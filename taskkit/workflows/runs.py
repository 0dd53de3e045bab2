"""Starting a workflow run on RQ's dependencies, and reading where a run stands.

A run is enqueued whole, in one MULTI/EXEC: the jobs of the first steps on their queues,
every other job deferred on RQ's dependencies (``Dependency(allow_failure=True)``), so
RQ itself moves a step on when its upstream jobs ended, however they ended (a worker
that died included). Whether the step then runs or is skipped is decided when it runs
(:mod:`taskkit.workflows.steps`). Every job of a run carries the run's ``ttl``: a job
that never gets to run (its upstream stopped by hand) expires with the run instead of
waiting for ever, and results and failures are kept at least as long as the run.

Redis holds, per run, a hash ``taskkit:workflow:run:ID`` (the workflow, when it started,
its steps and their job counts) that expires with the run, and a sorted set of the runs
for ``taskkit workflows list``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from redis.client import Pipeline
from redis.typing import EncodableT, FieldT
from rq.job import Dependency, Job, JobStatus

from taskkit import connection
from taskkit.config import WorkflowConfig, did_you_mean
from taskkit.errors import JobArgumentsError, WorkflowError
from taskkit.workflows import store
from taskkit.workflows.plan import STEP_META, PlannedJob, PlannedStep, job_ids, plan_run
from taskkit.workflows.steps import pending_key
from taskkit.workflows.store import JobState

if TYPE_CHECKING:
    from taskkit.registry import Registry

RUN_KEY_PREFIX = "taskkit:workflow:run:"
RUNS_KEY = "taskkit:workflow:runs"
"""Sorted set: run id -> the time its record expires."""


@dataclass(frozen=True)
class StepView:
    """A step of a run and the state of each of its jobs (one, or one per item)."""

    name: str
    job: str
    fanned: bool
    jobs: list[JobState]


class Run(Protocol):
    """A workflow run: a real one (:class:`WorkflowRun`) or an eager one."""

    id: str
    workflow: str

    def status(self) -> str:
        """``running``, ``finished`` or ``failed``."""
        ...

    def results(self) -> dict[str, Any]:
        """Step -> what its job returned (a list, in item order, for a fanned-out step)."""
        ...

    def steps(self) -> list[StepView]:
        """Each step with its jobs' states."""
        ...


def run_status(views: list[StepView]) -> str:
    """``running`` while any job may still change; then ``failed`` if any job did not
    succeed and was not skipped, else ``finished``."""
    jobs = [job for view in views for job in view.jobs]
    if not all(job.ended for job in jobs):
        return "running"
    return "failed" if any(job.outcome == "failed" for job in jobs) else "finished"


class WorkflowRun:
    """A run in Redis; every method reads its current state (one or two round trips)."""

    def __init__(
        self,
        registry: Registry,
        run_id: str,
        workflow: str,
        layout: list[tuple[str, str, int, int | None]],
        created_at: datetime | None = None,
        *,
        schedule: str | None = None,
    ) -> None:
        self.registry = registry
        self.id = run_id
        self.workflow = workflow
        self.created_at = created_at
        self.schedule = schedule  # the schedule whose tick (or run by hand) started it
        self._layout = layout  # (step, job, position, count) in dependency order

    def __repr__(self) -> str:
        return f"<WorkflowRun {self.id} of {self.workflow!r}>"

    def _ids(self) -> list[tuple[str, str, int | None, list[str]]]:
        return [(s, j, c, job_ids(self.id, p, c)) for s, j, p, c in self._layout]

    def steps(self) -> list[StepView]:
        """Each step with its jobs' states, in dependency order."""
        layout = self._ids()
        every = [i for *_, ids in layout for i in ids]
        with self.registry.connection.pipeline(transaction=False) as pipe:
            store.ask_states(pipe, every)
            found = iter(store.states(every, pipe.execute(), self.registry.serializer))
        return [
            StepView(s, j, c is not None, [next(found) for _ in ids]) for s, j, c, ids in layout
        ]

    def status(self) -> str:
        """``running``, ``finished`` or ``failed`` (see :func:`run_status`)."""
        return run_status(self.steps())

    def results(self) -> dict[str, Any]:
        """Step -> what its job returned, or the list of what its jobs returned, in item
        order, for a fanned-out step; None where a job failed, was skipped or has not run."""
        layout = self._ids()
        every = [i for *_, ids in layout for i in ids]
        conn = self.registry.connection
        with conn.pipeline(transaction=False) as pipe:
            store.ask_results(pipe, every)
            values = iter(store.results(every, pipe.execute(), conn, self.registry.serializer))
        return {
            s: ([next(values) for _ in ids] if c is not None else next(values))
            for s, _, c, ids in layout
        }


# -- starting a run ------------------------------------------------------------------------


def workflow_config(registry: Registry, name: str) -> WorkflowConfig:
    """The workflow ``name`` of ``registry``; :class:`WorkflowError` if there is none."""
    workflow = registry.config.workflows.get(name)
    if workflow is None:
        close = did_you_mean(name, list(registry.config.workflows))
        fix = (
            f"did you mean {close!r}?"
            if close
            else f"declare it under workflows: in {registry.path}"
        )
        raise WorkflowError(f"no workflow named {name!r} in {registry.path}; {fix}")
    return workflow


def check_inputs(name: str, workflow: WorkflowConfig, inputs: Mapping[str, Any]) -> None:
    """Raise :class:`WorkflowError` unless ``inputs`` are exactly the workflow's, with a
    list for each input a step fans out over."""
    unknown = [key for key in inputs if key not in workflow.inputs]
    if unknown:
        close = did_you_mean(unknown[0], [i for i in workflow.inputs if i not in inputs])
        hint = (
            f"did you mean {close!r}?"
            if close
            else f"its inputs: {', '.join(workflow.inputs) or 'none'}"
        )
        raise WorkflowError(f"workflow {name!r}: unknown input {unknown[0]!r}; {hint}")
    missing = [key for key in workflow.inputs if key not in inputs]
    if missing:
        raise WorkflowError(
            f"workflow {name!r}: missing input {missing[0]!r}; pass every input: "
            f"{', '.join(workflow.inputs)}"
        )
    for step, config in workflow.steps.items():
        if config.in_ is not None and not isinstance(inputs[config.in_], list | tuple):
            raise WorkflowError(
                f"workflow {name!r}: input {config.in_!r} is {type(inputs[config.in_]).__name__}, "
                f"not a list; step {step!r} runs once per item of it, so pass a list"
            )


def prepared_steps(
    registry: Registry, name: str, inputs: Mapping[str, Any], run_id: str
) -> tuple[WorkflowConfig, list[PlannedStep]]:
    """The checked plan of a run: every job's arguments bound and serializable."""
    workflow = workflow_config(registry, name)
    check_inputs(name, workflow, inputs)
    signatures = {
        job: registry.job(job).signature for job in {s.job for s in workflow.steps.values()}
    }
    steps = plan_run(run_id, name, workflow, inputs, signatures)
    for step in steps:
        results = workflow.steps[step.name].results
        filler: dict[str, Any] = {results: []} if results else {}  # given when it runs
        for planned in step.jobs[:1] if step.count is None else step.jobs:
            try:
                registry._prepare(step.job, (), {**planned.kwargs, **filler})
            except JobArgumentsError as error:
                raise WorkflowError(f"workflow {name!r}, step {step.name!r}: {error}") from None
    return workflow, steps


def start(registry: Registry, name: str, inputs: dict[str, Any]) -> WorkflowRun:
    """Enqueue a run of workflow ``name`` (see the module); the run."""
    prepared = prepare(registry, name, inputs)

    def send() -> None:
        with registry.connection.pipeline() as pipe:
            pipe.multi()
            prepared.write(pipe)
            pipe.execute()

    connection.write(registry.redis_url, f"start workflow {name!r}", send)
    return prepared.run()


@dataclass
class PreparedRun:
    """A run checked and built, not yet sent: :meth:`write` queues it on a transaction."""

    registry: Registry
    id: str
    workflow: WorkflowConfig
    jobs: list[tuple[Job, PlannedJob]]
    layout: list[tuple[str, str, int, int | None]]
    created: datetime
    record: dict[FieldT, EncodableT]

    def write(self, pipe: Pipeline) -> None:
        """Queue the whole run on ``pipe``, a MULTI/EXEC transaction (a tick's, or its own):
        no job can start before every job of the run exists."""
        ttl = self.workflow.ttl
        for job, planned in self.jobs:
            if planned.depends_on:
                job.set_status(JobStatus.DEFERRED, pipeline=pipe)
                job.save(pipeline=pipe)
                job.register_dependency(pipeline=pipe)
            if len(planned.depends_on) > 1:  # lets a fan-in's check read one job, not all
                pipe.sadd(pending_key(job.id), *planned.depends_on)
                pipe.expire(pending_key(job.id), ttl)
        for job, planned in self.jobs:
            if not planned.depends_on:
                self.registry.queue(job.origin).enqueue_job(job, pipeline=pipe)
        for job, _ in self.jobs:  # after the registrations, which create the dependents sets
            job.cleanup(ttl=ttl, pipeline=pipe)
        pipe.hset(RUN_KEY_PREFIX + self.id, mapping=dict(self.record))
        pipe.expire(RUN_KEY_PREFIX + self.id, ttl)
        pipe.zremrangebyscore(RUNS_KEY, "-inf", self.created.timestamp())
        pipe.zadd(RUNS_KEY, {self.id: self.created.timestamp() + self.workflow.ttl})

    def run(self) -> WorkflowRun:
        """The run, once written."""
        name = str(self.record["workflow"])
        return WorkflowRun(self.registry, self.id, name, self.layout, self.created)


def prepare(registry: Registry, name: str, inputs: dict[str, Any], **marks: str) -> PreparedRun:
    """Check and build a run of workflow ``name``; ``marks`` go into the run's record (the
    schedule and tick that started it)."""
    run_id = uuid.uuid4().hex
    workflow, steps = prepared_steps(registry, name, inputs, run_id)
    jobs = [
        (_job(registry, workflow, step, planned), planned)
        for step in steps
        for planned in step.jobs
    ]
    layout = [(s.name, s.job, s.position, s.count) for s in steps]
    created = datetime.now(UTC)
    record: dict[FieldT, EncodableT] = {
        "workflow": name,
        "created_at": created.isoformat(),
        "ttl": str(workflow.ttl),
        "steps": json.dumps(layout),
    }
    record.update(dict(marks.items()))
    return PreparedRun(registry, run_id, workflow, jobs, layout, created, record)


def _job(
    registry: Registry, workflow: WorkflowConfig, step: PlannedStep, planned: PlannedJob
) -> Job:
    declared = registry.job(step.job)
    settings = declared.settings
    options: dict[str, Any] = {
        "job_id": planned.id,
        # A step that never gets to run expires with the run; results and failures are
        # kept at least as long as the run, for the steps after it and for show.
        "ttl": workflow.ttl,
        "result_ttl": max(settings.result_ttl, workflow.ttl),
        "failure_ttl": max(settings.failure_ttl, workflow.ttl),
        "meta": {"taskkit_job": declared.name, STEP_META: planned.spec.to_meta()},
    }
    if planned.depends_on:
        # allow_failure: RQ moves the step on however its upstream ended; the step then
        # decides to run or be skipped (taskkit.workflows.steps).
        options["depends_on"] = Dependency(planned.depends_on, allow_failure=True)
    return registry._create(declared, (), dict(planned.kwargs), **options)


# -- reading runs back ---------------------------------------------------------------------


def fetch(registry: Registry, run_id: str) -> WorkflowRun:
    """The run ``run_id``; :class:`WorkflowError` if Redis has no such run (any more)."""
    key = RUN_KEY_PREFIX + run_id
    record = (
        cast("dict[bytes, bytes]", registry.connection.hgetall(key)) if run_id.isalnum() else {}
    )
    if not record:
        raise WorkflowError(
            f"no workflow run {run_id!r} in Redis; a run is kept for its workflow's ttl "
            "(taskkit workflows list shows the runs there are)"
        )
    return _from_record(registry, run_id, record)


def _from_record(registry: Registry, run_id: str, record: Mapping[Any, Any]) -> WorkflowRun:
    fields = {_text(k): _text(v) for k, v in record.items()}
    layout = [
        (str(s), str(j), int(p), None if c is None else int(c))
        for s, j, p, c in json.loads(fields["steps"])
    ]
    created = datetime.fromisoformat(fields["created_at"]) if fields.get("created_at") else None
    schedule = fields.get("taskkit_schedule")
    name = fields.get("workflow", "?")
    return WorkflowRun(registry, run_id, name, layout, created, schedule=schedule)


def recent(registry: Registry, workflow: str | None = None, limit: int = 20) -> list[WorkflowRun]:
    """The runs still in Redis, newest first (of ``workflow`` only, if given)."""
    conn = registry.connection
    ids = [_text(i) for i in cast("list[bytes]", conn.zrange(RUNS_KEY, 0, -1))]
    with conn.pipeline(transaction=False) as pipe:
        for run_id in ids:
            pipe.hgetall(RUN_KEY_PREFIX + run_id)
        records = pipe.execute()
    runs = [_from_record(registry, i, r) for i, r in zip(ids, records, strict=True) if r]
    gone = [i for i, r in zip(ids, records, strict=True) if not r]
    if gone:
        conn.zrem(RUNS_KEY, *gone)
    runs = [run for run in runs if workflow is None or run.workflow == workflow]
    runs.sort(key=lambda run: run.created_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return runs[:limit]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = [
    "RUNS_KEY",
    "RUN_KEY_PREFIX",
    "PreparedRun",
    "Run",
    "StepView",
    "WorkflowRun",
    "check_inputs",
    "fetch",
    "prepare",
    "prepared_steps",
    "recent",
    "run_status",
    "start",
    "workflow_config",
]
