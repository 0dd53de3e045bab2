"""Import resolution: every ``func`` of a jobs.yaml imported and checked, and every
schedule's arguments bound to its callable's signature, reported as file:line:col.

This is where a jobs.yaml's user code is imported, at load time and never for a name
read from Redis.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskkit.config import EffectiveJob, ScheduleConfig, did_you_mean
from taskkit.errors import ConfigError, Problem
from taskkit.flow import flow_problems
from taskkit.imports import AttributeMissingError, ReferenceImportError, import_reference
from taskkit.loader.document import LoadedConfig, read_config
from taskkit.loader.positions import Positions
from taskkit.workflows.validate import check_schedule_inputs, check_workflows


@dataclass(frozen=True)
class ResolvedJob:
    """A job's settings with its callable imported and its signature read."""

    settings: EffectiveJob
    func: Callable[..., Any]
    signature: inspect.Signature | None


def resolve(file: Path) -> tuple[LoadedConfig, dict[str, ResolvedJob]]:
    """Read ``file``, import every ``func`` and bind every schedule's arguments.

    Raises :class:`ConfigError` with every problem found. Every func and schedule that
    parsed is checked even when other parts of the file did not, so that one run
    reports every problem.
    """
    loaded, problems = read_config(file)
    jobs: dict[str, ResolvedJob] = {}
    if loaded is not None:
        extend_sys_path(loaded)
        jobs, unresolved = _resolve_jobs(loaded)
        problems += unresolved + _check_schedule_arguments(loaded, jobs)
        signatures = {name: job.signature for name, job in jobs.items()}
        problems += check_workflows(loaded.config, loaded.positions, signatures)
        problems += check_schedule_inputs(loaded.config, loaded.positions)
        problems += flow_problems(loaded, jobs)
    if problems or loaded is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line, p.column)))
    return loaded, jobs


def extend_sys_path(loaded: LoadedConfig) -> None:
    """Put jobs.yaml's own folder on ``sys.path``, and its ``pythonpath:`` folders before it.

    A project keeps jobs.yaml next to its package, so ``myapp.jobs:f`` imports from any
    working directory and from the ``taskkit`` script (whose ``sys.path`` has no cwd), as
    ``flask`` finds an app next to where it looks.
    """
    base = loaded.path.resolve().parent
    folders = [str((base / entry).resolve()) for entry in loaded.config.pythonpath]
    for folder in reversed([*folders, str(base)]):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def _resolve_jobs(loaded: LoadedConfig) -> tuple[dict[str, ResolvedJob], list[Problem]]:
    jobs: dict[str, ResolvedJob] = {}
    problems: list[Problem] = []
    for name, settings in loaded.config.effective_jobs().items():
        path = ("jobs", name, "func")
        try:
            func = import_callable(settings.func)
        except ImportFailedError as problem:
            problems.append(loaded.positions.problem(path, problem.message, problem.hint))
            continue
        jobs[name] = ResolvedJob(settings, func, _signature(func))
    return jobs, problems


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins and C callables have none
        return None


class ImportFailedError(Exception):
    """A ``func`` that does not import, with what went wrong and how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def import_callable(reference: str) -> Callable[..., Any]:
    """Import ``"package.module:attr"``; tells a missing module from one that failed."""
    try:
        target = import_reference(reference)
    except ReferenceImportError as error:
        raise _import_failed(error) from None
    except AttributeMissingError as error:
        names = [n for n in dir(error.module) if not n.startswith("_")]
        close = did_you_mean(error.part, names)
        raise ImportFailedError(
            str(error),
            f"did you mean {error.module_name}:{close}?" if close else "check the function's name",
        ) from None
    if not callable(target):
        raise ImportFailedError(
            f"{reference} is a {type(target).__name__}, not a callable",
            "point func at a function",
        )
    return target  # type: ignore[no-any-return]


def _import_failed(error: ReferenceImportError) -> ImportFailedError:
    if error.module_missing:
        return ImportFailedError(
            f"module {error.module_name!r} not found",
            "check the spelling, install the package, or add its folder to pythonpath:",
        )
    # The module exists: say it raised while importing, a missing import of its own too.
    if isinstance(error.error, ModuleNotFoundError):
        return ImportFailedError(
            str(error), "the module exists but one of its own imports failed; fix that import"
        )
    return ImportFailedError(
        str(error), "the module exists but fails when imported; fix the error in it"
    )


@dataclass(frozen=True)
class Mismatch:
    """Why arguments do not bind to a signature, with a did-you-mean for a misspelt keyword."""

    message: str
    hint: str = ""
    keyword: str | None = None

    @classmethod
    def of(
        cls, signature: inspect.Signature, kwargs: Mapping[str, Any], error: TypeError
    ) -> Mismatch:
        """The mismatch behind ``error``, raised by ``signature.bind(..., **kwargs)``."""
        params = signature.parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return cls(str(error))
        named = [p.name for p in params if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
        unexpected = [key for key in kwargs if key not in named]
        if not unexpected:
            return cls(str(error))
        keyword = unexpected[0]
        close = did_you_mean(keyword, [n for n in named if n not in kwargs])
        hint = f"did you mean {close!r}?" if close else f"the keywords it takes: {', '.join(named)}"
        return cls(f"unexpected keyword {keyword!r}", hint, keyword)


def _check_schedule_arguments(loaded: LoadedConfig, jobs: dict[str, ResolvedJob]) -> list[Problem]:
    problems = []
    for name, schedule in loaded.config.schedules.items():
        declared = jobs.get(schedule.job) if schedule.job is not None else None
        if declared is None or declared.signature is None:
            continue
        try:
            declared.signature.bind(*schedule.args, **schedule.kwargs)
        except TypeError as error:
            mismatch = Mismatch.of(declared.signature, schedule.kwargs, error)
            problems.append(_schedule_problem(loaded.positions, name, schedule, mismatch, declared))
    return problems


def _schedule_problem(
    positions: Positions,
    name: str,
    schedule: ScheduleConfig,
    mismatch: Mismatch,
    declared: ResolvedJob,
) -> Problem:
    where: tuple[str, ...] = ("kwargs",) if schedule.kwargs else ("args",) if schedule.args else ()
    if mismatch.keyword is not None:
        where = ("kwargs", mismatch.keyword)
    return positions.problem(
        ("schedules", name, *(where or ("job",))),
        f"the arguments do not fit {declared.settings.func}{declared.signature}: "
        f"{mismatch.message}",
        mismatch.hint or "make args/kwargs match the function's parameters",
        at_key=mismatch.keyword is not None,
    )


__all__ = [
    "ImportFailedError",
    "Mismatch",
    "ResolvedJob",
    "extend_sys_path",
    "import_callable",
    "resolve",
]
