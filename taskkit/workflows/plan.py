"""The steps of a workflow in order, and the jobs of one run: pure functions, no IO.

A run's job ids are derived from the run id and each step's position in jobs.yaml
(``RUN-2`` for a step, ``RUN-0-7`` for item 7 of a fanned-out one), so that a step can
name its upstream jobs from the counts it carries, without reading the run.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from taskkit.config import StepConfig, WorkflowConfig

STEP_META = "taskkit_step"
"""The job meta field that makes a job a workflow step (see :class:`StepSpec`)."""

Outcome = Literal["ok", "failed", "skipped"]


def find_cycle(steps: Mapping[str, StepConfig]) -> list[str] | None:
    """A list of steps that wait for each other in a circle (first == last), or None."""
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for upstream in steps[name].after:
            if upstream not in steps:
                continue
            if state.get(upstream) == "open":
                return [*path[path.index(upstream) :], upstream]
            if upstream not in state:
                found = visit(upstream, [*path, upstream])
                if found:
                    return found
        state[name] = "done"
        return None

    for name in steps:
        if name not in state:
            found = visit(name, [name])
            if found:
                return found
    return None


def order(steps: Mapping[str, StepConfig]) -> list[str]:
    """The steps so that each comes after those it names in ``after`` (file order on ties).

    The workflow was validated: every ``after`` names a step and there is no cycle.
    """
    done: list[str] = []
    waiting = list(steps)
    while waiting:
        ready = next(n for n in waiting if all(u in done for u in steps[n].after))
        done.append(ready)
        waiting.remove(ready)
    return done


def accepted(signature: inspect.Signature | None, names: Iterable[str]) -> list[str]:
    """Those of ``names`` a callable with ``signature`` takes as keywords (all, for
    ``**kwargs`` or a callable whose signature is unknown)."""
    if signature is None:
        return list(names)
    params = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return list(names)
    keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return [name for name in names if name in keywords]


def fanned_upstream(workflow: WorkflowConfig, step: StepConfig) -> list[str]:
    """The steps in ``step``'s ``after`` that are fanned out (have ``each``)."""
    return [u for u in step.after if u in workflow.steps and workflow.steps[u].each is not None]


def job_id(run_id: str, position: int, item: int | None) -> str:
    """The id of a step's job: ``RUN-POSITION`` or, for a fanned-out step, ``RUN-POSITION-ITEM``."""
    return f"{run_id}-{position}" if item is None else f"{run_id}-{position}-{item}"


def job_ids(run_id: str, position: int, count: int | None) -> list[str]:
    """Every job id of a step that has ``count`` items (None: not fanned out)."""
    if count is None:
        return [job_id(run_id, position, None)]
    return [job_id(run_id, position, item) for item in range(count)]


@dataclass(frozen=True)
class StepSpec:
    """What a step's job carries in its meta: enough to check its upstream and read its
    fan-in results when it runs, without the workflow's definition.

    ``after`` holds ``(step, position, count)`` of each upstream step (count None: not
    fanned out); ``results`` the parameter and the step whose results it receives.
    """

    run: str
    workflow: str
    step: str
    item: int | None
    on_failure: str
    after: list[tuple[str, int, int | None]]
    results: tuple[str, str] | None = None

    def to_meta(self) -> dict[str, Any]:
        """The JSON-friendly form stored in the job's meta."""
        return {
            "run": self.run,
            "workflow": self.workflow,
            "step": self.step,
            "item": self.item,
            "on_failure": self.on_failure,
            "after": [list(entry) for entry in self.after],
            "results": list(self.results) if self.results else None,
        }

    @classmethod
    def from_meta(cls, meta: Any) -> StepSpec:
        """Read it back; ValueError for anything else (a forged or damaged entry)."""
        try:
            results = meta["results"]
            spec = cls(
                run=str(meta["run"]),
                workflow=str(meta["workflow"]),
                step=str(meta["step"]),
                item=None if meta["item"] is None else int(meta["item"]),
                on_failure=str(meta["on_failure"]),
                after=[
                    (str(s), int(p), None if c is None else int(c)) for s, p, c in meta["after"]
                ],
                results=(str(results[0]), str(results[1])) if results else None,
            )
        except (KeyError, TypeError, ValueError, IndexError):
            raise ValueError("the job's workflow step meta is malformed") from None
        if not spec.run.replace("-", "").isalnum():
            raise ValueError("the job's workflow step meta names no valid run id")
        return spec

    def upstream_ids(self) -> list[tuple[str, list[str]]]:
        """Each upstream step with its job ids."""
        return [(step, job_ids(self.run, pos, count)) for step, pos, count in self.after]


def upstream_problem(outcomes: Mapping[str, Sequence[Outcome]]) -> str | None:
    """Why a step's upstream did not all succeed (step -> its jobs' outcomes), or None."""
    for step, found in outcomes.items():
        if "failed" in found:
            return f"step {step!r} failed"
        if "skipped" in found:
            return f"step {step!r} was skipped"
    return None


@dataclass(frozen=True)
class PlannedJob:
    """One job of a run: its id, the keyword arguments it is enqueued with, its spec."""

    id: str
    kwargs: dict[str, Any]
    spec: StepSpec
    depends_on: list[str]


@dataclass(frozen=True)
class PlannedStep:
    """A step of a run: its name, job, position in jobs.yaml, and jobs (count None:
    not fanned out)."""

    name: str
    job: str
    position: int
    count: int | None
    jobs: list[PlannedJob] = field(default_factory=list)


def plan_run(
    run_id: str,
    name: str,
    workflow: WorkflowConfig,
    inputs: Mapping[str, Any],
    signatures: Mapping[str, inspect.Signature | None],
) -> list[PlannedStep]:
    """Every job of a run of ``workflow`` with ``inputs``, the steps in dependency order.

    The inputs were checked: every ``in`` names a list.
    """
    positions = {step: n for n, step in enumerate(workflow.steps)}
    counts = {
        step: (None if config.in_ is None else len(inputs[config.in_]))
        for step, config in workflow.steps.items()
    }
    planned = []
    for step in order(workflow.steps):
        config = workflow.steps[step]
        after = [(u, positions[u], counts[u]) for u in config.after]
        fanned = fanned_upstream(workflow, config)
        spec = StepSpec(
            run=run_id,
            workflow=name,
            step=step,
            item=None,
            on_failure=config.on_failure,
            after=after,
            results=(config.results, fanned[0]) if config.results and fanned else None,
        )
        depends_on = [i for u, p, c in after for i in job_ids(run_id, p, c)]
        base = {k: inputs[k] for k in accepted(signatures.get(config.job), workflow.inputs)}
        current = PlannedStep(step, config.job, positions[step], counts[step])
        items: list[Any] = [None] if config.in_ is None else list(inputs[config.in_])
        for index, item in enumerate(items):
            number = None if config.in_ is None else index
            kwargs = base if config.each is None else {**base, config.each: item}
            current.jobs.append(
                PlannedJob(
                    job_id(run_id, positions[step], number),
                    kwargs,
                    StepSpec(**{**spec.__dict__, "item": number}),
                    depends_on,
                )
            )
        planned.append(current)
    return planned


__all__ = [
    "STEP_META",
    "Outcome",
    "PlannedJob",
    "PlannedStep",
    "StepSpec",
    "accepted",
    "fanned_upstream",
    "find_cycle",
    "job_id",
    "job_ids",
    "order",
    "plan_run",
    "upstream_problem",
]
