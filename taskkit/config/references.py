"""Checks across sections (a schedule's job exists, a job's queue exists, ...), as
problems with the key path that is wrong. No IO.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskkit.config.jobs import Settings
from taskkit.config.model import TaskkitConfig
from taskkit.config.schedules import ScheduleConfig
from taskkit.config.values import did_you_mean
from taskkit.cron import cron_problem
from taskkit.errors import Problem


def check_references(
    config: TaskkitConfig, also_declared: Mapping[str, set[str]] | None = None
) -> list[Problem]:
    """Cross-field rules pydantic cannot see one model at a time. No IO.

    ``also_declared`` names entries (by section) that exist but were set aside because
    they are invalid, so that references to them are not reported a second time.
    """
    extra = also_declared or {}
    return list(
        _reference_problems(
            config,
            extra.get("queues", set()),
            extra.get("jobs", set()),
            extra.get("workflows", set()),
        )
    )


def _reference_problems(
    config: TaskkitConfig, other_queues: set[str], other_jobs: set[str], other_workflows: set[str]
) -> Iterator[Problem]:
    queues = set(config.queues) | other_queues
    if queues and config.defaults.queue not in queues:
        yield _default_queue_problem(config, queues)
    for name, job in config.jobs.items():
        if queues and job.queue is not None and job.queue not in queues:
            yield Problem(
                ("jobs", name, "queue"),
                f"queue {job.queue!r} is not declared in queues",
                _suggest(job.queue, queues, "add it under queues:"),
            )
    yield from _context_problems(config)
    for name, schedule in config.schedules.items():
        yield from _schedule_problems(config, name, schedule, other_jobs, other_workflows)


def _default_queue_problem(config: TaskkitConfig, queues: set[str]) -> Problem:
    name = config.defaults.queue
    if "queue" in config.defaults.model_fields_set:
        return Problem(
            ("defaults", "queue"),
            f"queue {name!r} is not declared in queues",
            _suggest(name, queues, "add it under queues:"),
        )
    # Nothing in the file names it: say where the name comes from.
    return Problem(
        ("queues",), f"no queue named {name!r}", "declare it under queues or set defaults.queue"
    )


def _context_problems(config: TaskkitConfig) -> Iterator[Problem]:
    if config.app is not None:
        return
    hint = "add an app: section with a factory, or set context: none"
    if config.defaults.context in ("app", "request"):
        yield Problem(
            ("defaults", "context"), f"context {config.defaults.context} needs an app", hint
        )
    for section in ("queues", "jobs"):
        entries: dict[str, Settings] = getattr(config, section)
        for name, entry in entries.items():
            if entry.context in ("app", "request"):
                yield Problem(
                    (section, name, "context"), f"context {entry.context} needs an app", hint
                )


def _schedule_problems(
    config: TaskkitConfig,
    name: str,
    schedule: ScheduleConfig,
    other_jobs: set[str],
    other_workflows: set[str],
) -> Iterator[Problem]:
    if schedule.job is not None and schedule.job not in config.jobs.keys() | other_jobs:
        yield Problem(
            ("schedules", name, "job"),
            f"job {schedule.job!r} is not declared in jobs",
            _suggest(schedule.job, config.jobs, "declare it under jobs:"),
        )
    known = config.workflows.keys() | other_workflows
    if schedule.workflow is not None and schedule.workflow not in known:
        yield Problem(
            ("schedules", name, "workflow"),
            f"workflow {schedule.workflow!r} is not declared in workflows",
            _suggest(schedule.workflow, config.workflows, "declare it under workflows:"),
        )
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield Problem(
            ("schedules", name, "timezone"),
            f"unknown timezone {schedule.timezone!r}",
            "use an IANA name such as UTC, Europe/Berlin or America/New_York",
        )
    problem = cron_problem(schedule.cron) if schedule.cron is not None else None
    if problem is not None:
        yield Problem(("schedules", name, "cron"), *problem)
    if schedule.grace is not None and schedule.misfire == "once":
        yield Problem(
            ("schedules", name, "grace"),
            "grace has no effect with misfire: once (a late tick always runs, once)",
            "remove grace, or use misfire: skip to drop ticks later than grace",
        )


def _suggest(value: str, choices: Any, otherwise: str) -> str:
    close = did_you_mean(value, list(choices))
    return f"did you mean {close!r}?" if close else otherwise
