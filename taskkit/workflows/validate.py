"""The checks of jobs.yaml's ``workflows:``, reported as file:line problems.

pydantic checks each step's shape (see :class:`~taskkit.config.StepConfig`); what needs
the whole file or the jobs' callables is checked here: every step names a declared job,
every ``after`` a step, the steps form no cycle, ``in`` names an input, ``results`` comes
after exactly one fanned-out step, and the inputs, ``each`` and ``results`` bind to each
job's signature. Nothing is imported: the loader passes the signatures it resolved.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskkit.config import StepConfig, TaskkitConfig, WorkflowConfig, did_you_mean
from taskkit.errors import Problem
from taskkit.workflows.plan import fanned_upstream, find_cycle

if TYPE_CHECKING:
    from taskkit.loader import Positions

Signatures = Mapping[str, inspect.Signature | None]


def check_workflows(
    config: TaskkitConfig, positions: Positions, signatures: Signatures
) -> list[Problem]:
    """Every problem of the workflows of ``config``; ``signatures`` holds the callables'
    signatures of the jobs that resolved (a job missing from it is not bound)."""
    return [
        positions.problem(found.path, found.message, found.hint)
        for name, workflow in config.workflows.items()
        for found in _problems(config, name, workflow, signatures)
    ]


@dataclass(frozen=True)
class _Found:
    path: tuple[str | int, ...]
    message: str
    hint: str


def _problems(
    config: TaskkitConfig, name: str, workflow: WorkflowConfig, signatures: Signatures
) -> Iterator[_Found]:
    where = ("workflows", name)
    for index, item in enumerate(workflow.inputs):
        if item in workflow.inputs[:index]:
            yield _Found(
                (*where, "inputs", index), f"input {item!r} is listed twice", "list it once"
            )
    for step, config_ in workflow.steps.items():
        at = (*where, "steps", step)
        yield from _references(config, workflow, at, config_)
        yield from _fan_in(workflow, at, config_)
        if config_.job in signatures:
            yield from _bindings(workflow, at, config_, signatures[config_.job])
    cycle = find_cycle(workflow.steps)
    if cycle is not None:
        yield _Found(
            (*where, "steps", cycle[0], "after"),
            f"the steps wait for each other in a cycle: {' -> '.join(cycle)}",
            "remove one of these after: entries",
        )


def _references(
    config: TaskkitConfig, workflow: WorkflowConfig, at: tuple[str, ...], step: StepConfig
) -> Iterator[_Found]:
    if step.job not in config.jobs:
        yield _Found(
            (*at, "job"),
            f"job {step.job!r} is not declared in jobs",
            _suggest(step.job, list(config.jobs), "declare it under jobs:"),
        )
    for index, upstream in enumerate(step.after):
        if upstream == at[-1]:
            yield _Found(
                (*at, "after", index), f"step {upstream!r} comes after itself", "remove it"
            )
        elif upstream not in workflow.steps:
            yield _Found(
                (*at, "after", index),
                f"step {upstream!r} is not a step of this workflow",
                _suggest(upstream, list(workflow.steps), "name a step declared under steps:"),
            )
    if step.in_ is not None and step.in_ not in workflow.inputs:
        yield _Found(
            (*at, "in"),
            f"input {step.in_!r} is not declared in the workflow's inputs",
            _suggest(step.in_, workflow.inputs, f"add it: inputs: [..., {step.in_}]"),
        )
    for key, value in (("each", step.each), ("results", step.results)):
        if value is not None and value in workflow.inputs:
            yield _Found(
                (*at, key),
                f"{key} {value!r} is also an input of the workflow",
                "use another name: the job would get two values for it",
            )
    if step.each is not None and step.each == step.results:
        yield _Found(
            (*at, "results"),
            f"results {step.results!r} is also the step's each",
            "use another name for one of them",
        )


def _fan_in(workflow: WorkflowConfig, at: tuple[str, ...], step: StepConfig) -> Iterator[_Found]:
    if step.results is None:
        return
    known = [u for u in step.after if u in workflow.steps]
    fanned = fanned_upstream(workflow, step)
    if len(fanned) == 1:
        return
    if fanned:
        message = f"results is ambiguous: steps {', '.join(map(repr, fanned))} are all fanned out"
        hint = "let the step come after one fanned-out step, or split it in two"
    elif known:
        named = ", ".join(repr(u) for u in known)
        message = f"results is a fan-in, but the steps it comes after ({named}) are not fanned out"
        hint = "give the step it collects each: and in:, or remove results:"
    else:
        message = "results is a fan-in, but the step comes after no step"
        hint = "add after: [the fanned-out step], or remove results:"
    yield _Found((*at, "results"), message, hint)


def _bindings(
    workflow: WorkflowConfig,
    at: tuple[str, ...],
    step: StepConfig,
    signature: inspect.Signature | None,
) -> Iterator[_Found]:
    if signature is None:  # some builtins and C callables have none: nothing to check
        return
    params = list(signature.parameters.values())
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    keywords = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    shown = f"{step.job}{signature}"
    for key, value in (("each", step.each), ("results", step.results)):
        if value is not None and not takes_any and value not in keywords:
            close = did_you_mean(value, keywords)
            hint = f"did you mean {close!r}?" if close else f"its parameters: {', '.join(keywords)}"
            yield _Found((*at, key), f"job {shown} takes no parameter {value!r}", hint)
    given = set(workflow.inputs) | {v for v in (step.each, step.results) if v is not None}
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for param in params:
        if param.default is not param.empty or param.kind in variadic:
            continue
        if param.kind is param.POSITIONAL_ONLY:
            yield _Found(
                (*at, "job"),
                f"job {shown}: parameter {param.name!r} is positional-only",
                "a step passes keywords only; make it a normal parameter or give it a default",
            )
        elif param.name not in given:
            yield _Found(
                (*at, "job"),
                f"job {shown}: parameter {param.name!r} gets no value",
                f"add {param.name} to the workflow's inputs, or give it a default",
            )


def check_schedule_inputs(config: TaskkitConfig, positions: Positions) -> list[Problem]:
    """Every problem of the ``kwargs`` of schedules that name a workflow: each must be one
    of the workflow's inputs, every input must be given, and an input a step fans out over
    must be a list."""
    problems = []
    for name, schedule in config.schedules.items():
        workflow = config.workflows.get(schedule.workflow or "")
        if workflow is not None:
            problems += [
                positions.problem(found.path, found.message, found.hint, at_key=found.at_key)
                for found in _input_problems(name, schedule.kwargs, workflow)
            ]
    return problems


@dataclass(frozen=True)
class _Input:
    path: tuple[str | int, ...]
    message: str
    hint: str
    at_key: bool = False


def _input_problems(
    name: str, kwargs: Mapping[str, object], workflow: WorkflowConfig
) -> Iterator[_Input]:
    where = ("schedules", name, "kwargs")
    inputs = workflow.inputs
    for key in kwargs:
        if key not in inputs:
            hint = _suggest(key, inputs, f"its inputs: {', '.join(inputs) or 'none'}")
            yield _Input((*where, key), f"{key!r} is not an input of the workflow", hint, True)
    missing = [key for key in inputs if key not in kwargs]
    if missing:
        yield _Input(
            where if kwargs else ("schedules", name, "workflow"),
            f"the workflow's input {missing[0]!r} gets no value",
            f"give every input under kwargs: {', '.join(inputs)}",
        )
    for step, config in workflow.steps.items():
        if config.in_ is None or config.in_ not in kwargs:
            continue
        value = kwargs[config.in_]
        if not isinstance(value, list):
            yield _Input(
                (*where, config.in_),
                f"input {config.in_!r} is {type(value).__name__}, not a list",
                f"step {step!r} runs once per item of it; write a list: [a, b]",
            )


def _suggest(value: str, choices: list[str], otherwise: str) -> str:
    close = did_you_mean(value, choices)
    return f"did you mean {close!r}?" if close else otherwise


__all__ = ["check_schedule_inputs", "check_workflows"]
