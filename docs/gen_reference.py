"""Write the parts of the docs that the code already says: jobs.yaml's keys and the CLI's help.

    python docs/gen_reference.py           # rewrite them in docs/jobs-yaml.md and docs/cli.md
    python docs/gen_reference.py --check   # exit 1 if either page is out of date

The key tables come from the JSON Schema that the pydantic models generate (the same one
as taskkit.schema.json); what each key means is written here, in DESCRIPTIONS, because the
models carry no prose. A key the schema has and DESCRIPTIONS lacks, or the other way
round, stops the generator with the key's name, so the reference cannot fall behind the
models unnoticed (tests/test_docs.py runs the check). The command reference is each
command's ``--help``, rendered by click at a fixed width.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

DOCS = Path(__file__).resolve().parent
WIDTH = 88
"""The width click wraps help text to, so the output does not depend on the terminal."""

# (model in the schema, heading: where the keys sit in jobs.yaml, anchor of the table)
SECTIONS: list[tuple[str, str, str]] = [
    ("TaskkitConfig", "Top level", "top-level"),
    ("RedisConfig", "redis:", "redis"),
    ("WorkerConfig", "worker:", "worker"),
    ("AppConfig", "app:", "app"),
    ("Defaults", "defaults:", "defaults"),
    ("QueueConfig", "queues.NAME:", "queues"),
    ("JobConfig", "jobs.NAME:", "jobs"),
    ("RetryConfig", "retry: (in defaults, a queue or a job)", "retry"),
    ("BackoffConfig", "retry.backoff:", "backoff"),
    ("UniqueConfig", "jobs.NAME.unique:", "unique"),
    ("ConcurrencyConfig", "jobs.NAME.concurrency:", "concurrency"),
    ("RateLimitConfig", "jobs.NAME.rate_limit:", "rate-limit"),
    ("ScheduleConfig", "schedules.NAME:", "schedules"),
    ("WorkflowConfig", "workflows.NAME:", "workflows"),
    ("StepConfig", "workflows.NAME.steps.STEP:", "steps"),
]

_INHERITS = "Unset: the queue's, else `defaults:`'s, else "
DESCRIPTIONS: dict[str, str] = {
    "TaskkitConfig.version": "The format's version; `1` is the only one.",
    "TaskkitConfig.redis": "Where the queues live: [`redis:`](#redis).",
    "TaskkitConfig.worker": "How fast dead workers' jobs are recovered: [`worker:`](#worker).",
    "TaskkitConfig.app": (
        "The Flask app jobs run in: [`app:`](#app). Without it every job runs with `context: none`."
    ),
    "TaskkitConfig.pythonpath": (
        "Folders, relative to this file, put on `sys.path` before this file's own folder "
        "(which is always there)."
    ),
    "TaskkitConfig.serializer": (
        "How arguments travel: `json`, or `pickle` as an explicit opt-in (it trusts "
        "Redis completely: see [Reliability and security](reliability.md#security-model))."
    ),
    "TaskkitConfig.defaults": "Settings every job starts from: [`defaults:`](#defaults).",
    "TaskkitConfig.queues": (
        "Queues in priority order (a worker drains the first one first), each with its "
        "own settings: [`queues.NAME:`](#queues)."
    ),
    "TaskkitConfig.jobs": "The declared jobs: [`jobs.NAME:`](#jobs).",
    "TaskkitConfig.schedules": "Recurring and one-off runs: [`schedules.NAME:`](#schedules).",
    "RedisConfig.url": (
        "`redis://`, `rediss://`, `unix://` or `redis+sentinel://` (see "
        "[URL forms](deployment.md#redis-url-forms)); `$TASKKIT_REDIS_URL` wins over it. "
        "Its password never appears in any output."
    ),
    "WorkerConfig.heartbeat_interval": "A busy worker renews its job's heartbeat this often.",
    "WorkerConfig.heartbeat_grace": (
        "How long a missed renewal is tolerated before the job counts as abandoned."
    ),
    "WorkerConfig.maintenance_interval": "How often each worker looks for abandoned jobs.",
    "WorkerConfig.redis_timeout": "How long Redis may be away before a worker exits 1.",
    "AppConfig.factory": (
        '`"module:callable"` returning a Flask app, or `"module:attr"` of an app; called '
        "once per worker process."
    ),
    "AppConfig.kwargs": "Keyword arguments for the factory.",
    "AppConfig.server_name": (
        "The host `context: request` builds its request for, so "
        "`url_for(..., _external=True)` works."
    ),
    "Defaults.timeout": "How long a job may run before RQ stops it. Built-in default `3m`.",
    "Defaults.result_ttl": "How long a result is kept; `0` keeps none. Built-in default `1d`.",
    "Defaults.failure_ttl": "How long a failed job is kept. Built-in default `7d`.",
    "Defaults.retry": "How a failed job is retried: [`retry:`](#retry). Built-in default none.",
    "Defaults.context": (
        "`none`, `app` or `request` (see [Python API](python-api.md#context-policies)). "
        "Built-in default `app` with an `app:` section, else `none`."
    ),
    "Defaults.queue": "The queue of a job that names none.",
    "QueueConfig.timeout": "Overrides `defaults:` for the jobs on this queue.",
    "QueueConfig.result_ttl": "Overrides `defaults:` for the jobs on this queue.",
    "QueueConfig.failure_ttl": "Overrides `defaults:` for the jobs on this queue.",
    "QueueConfig.retry": "Overrides `defaults:` for the jobs on this queue.",
    "QueueConfig.context": "Overrides `defaults:` for the jobs on this queue.",
    "JobConfig.func": "The callable the job runs: `module:function` (imported at validate time).",
    "JobConfig.queue": "The queue it goes to; unset: `defaults.queue`.",
    "JobConfig.description": ("Shown by RQ's tools; unset: the call with secret arguments hidden."),
    "JobConfig.timeout": _INHERITS + "`3m`.",
    "JobConfig.result_ttl": _INHERITS + "`1d`.",
    "JobConfig.failure_ttl": _INHERITS + "`7d`.",
    "JobConfig.retry": _INHERITS + "no retry.",
    "JobConfig.context": _INHERITS + "`app` with an `app:` section, or `none`.",
    "RetryConfig.max": "Retries after the first failure (0 to 1000).",
    "RetryConfig.intervals": (
        "Waits before each retry; the last one repeats. Empty: retry at once."
    ),
    "ScheduleConfig.job": "A job declared under `jobs:`; its queue, timeout and retry apply.",
    "ScheduleConfig.workflow": (
        "A workflow declared under `workflows:`, instead of `job:`: each tick starts one run, "
        "with `kwargs` as its inputs."
    ),
    "ScheduleConfig.cron": (
        "Five cron fields, in the schedule's timezone. Exactly one of `cron`, `every`, `at`."
    ),
    "ScheduleConfig.every": "A fixed rate on a grid anchored at the Unix epoch.",
    "ScheduleConfig.at": "Once, at this time; a naive time is in the schedule's timezone.",
    "ScheduleConfig.timezone": "IANA name, e.g. `Europe/Berlin`.",
    "ScheduleConfig.args": "Positional arguments, bound to the function's signature at load.",
    "ScheduleConfig.kwargs": "Keyword arguments, bound to the function's signature at load.",
    "ScheduleConfig.enabled": "`false` removes the schedule from Redis at the next sync.",
    "ScheduleConfig.overlap": (
        "`skip`: no tick while the previous run is queued or running; `allow`: enqueue anyway."
    ),
    "ScheduleConfig.misfire": (
        "Ticks missed while no scheduler ran: `once` runs one catch-up, `skip` drops "
        "those later than `grace`."
    ),
    "ScheduleConfig.grace": "With `misfire: skip`, how late a tick may still run (default 60 s).",
    "ScheduleConfig.description": "Shown by `schedules list`.",
    "TaskkitConfig.workflows": (
        "Several jobs run as one unit: [`workflows.NAME:`](#workflows); see "
        "[Workflows](workflows.md)."
    ),
    "WorkflowConfig.inputs": "The run's keyword arguments; `start_workflow` needs all of them.",
    "WorkflowConfig.steps": "The steps: [`workflows.NAME.steps.STEP:`](#steps), at least one.",
    "WorkflowConfig.ttl": (
        "How long a run, its jobs and their results are kept, from its start; a step that "
        "has not run by then expires with the run."
    ),
    "WorkflowConfig.description": "Free text.",
    "StepConfig.job": "The declared job the step runs.",
    "StepConfig.after": (
        "Steps that must end first; without it the step starts with the run."
    ),
    "StepConfig.each": (
        "Fan-out: run the job once per item of `in`, passing the item as this keyword."
    ),
    "StepConfig.in": "The list input `each` goes over.",
    "StepConfig.results": (
        "Fan-in: pass the list of the results of the fanned-out step in `after`, in item "
        "order, as this keyword (None where an item failed)."
    ),
    "StepConfig.on_failure": (
        "After a failed or skipped step: `skip` this one (and the steps after it), or `run` it."
    ),
}

_DISCARD = (
    'Exception classes (`"module:Class"` or `"module.Class"`, imported at validate time) '
    "that fail the job at once, never retried; the reason starts its failure text."
)
_ENQUEUE = (
    "`immediate`, or `after_commit`: inside a Flask-SQLAlchemy transaction the job is sent "
    "when the session commits, dropped on rollback (see [Flow control](flow-control.md))."
)
_KEY = "A `str.format` template over the job's arguments, checked at validate time"
DESCRIPTIONS.update(
    {
        "Defaults.discard_on": _DISCARD + " Built-in default none.",
        "Defaults.enqueue": _ENQUEUE + " Built-in default `immediate`.",
        "QueueConfig.discard_on": "Overrides `defaults:` for the jobs on this queue.",
        "QueueConfig.enqueue": "Overrides `defaults:` for the jobs on this queue.",
        "JobConfig.discard_on": _INHERITS + "none. " + _DISCARD,
        "JobConfig.enqueue": _INHERITS + "`immediate`. " + _ENQUEUE,
        "JobConfig.unique": (
            "At most one such job waiting (or running): [`unique:`](#unique). "
            "A duplicate enqueue returns the job already there."
        ),
        "JobConfig.concurrency": (
            "At most `limit` such jobs queued or running at once, across workers; the others "
            "wait out of their queue's way: [`concurrency:`](#concurrency)."
        ),
        "JobConfig.rate_limit": (
            "At most `limit` starts per `per` of all jobs sharing the key (a sliding window); "
            "a job over it is delayed, never failed: [`rate_limit:`](#rate-limit)."
        ),
        "RetryConfig.backoff": (
            "Growing waits instead of `intervals`: [`backoff:`](#backoff). Not both."
        ),
        "RetryConfig.on": (
            "Retry only these exception classes (imported at validate time); any other "
            "fails at once. Unset: retry any exception."
        ),
        "BackoffConfig.base": "The wait before the first retry.",
        "BackoffConfig.factor": "Each wait is the one before times this (1 to 100).",
        "BackoffConfig.max": "No wait is longer than this.",
        "BackoffConfig.jitter": (
            "Draw each wait between half of it and all of it, so that jobs that failed "
            "together are retried apart."
        ),
        "UniqueConfig.key": (
            _KEY + "; unset: the job's name and a digest of all its arguments."
        ),
        "UniqueConfig.while": (
            "`queued`: a duplicate is refused while the job waits; `queued_or_running`: "
            "also while it runs."
        ),
        "ConcurrencyConfig.key": _KEY + "; unset: the job's name.",
        "ConcurrencyConfig.limit": "How many jobs with one key may be queued or running at once.",
        "RateLimitConfig.key": _KEY + "; unset: the job's name. Jobs may share a key.",
        "RateLimitConfig.limit": "How many jobs with the key may start within any `per`.",
        "RateLimitConfig.per": "The length of the sliding window.",
    }
)

_DURATION_DESCRIPTION = "Seconds, or a string like 45s, 10m, 2h, 1d, 1h30m"


class StaleReferenceError(Exception):
    """The models and DESCRIPTIONS or SECTIONS disagree; the message says what to add."""


def json_schema() -> dict[str, Any]:
    """The schema of jobs.yaml as the models make it (what `taskkit schema` prints)."""
    from taskkit.schema import json_schema as make

    return make()


def key_tables(schema: dict[str, Any]) -> str:
    """One markdown table per section of jobs.yaml, every key described."""
    models = {"TaskkitConfig": schema, **schema["$defs"]}
    unplaced = sorted(set(models) - {model for model, _, _ in SECTIONS})
    if unplaced:
        raise StaleReferenceError(f"add these models to SECTIONS: {unplaced}")
    keys = {f"{model}.{key}" for model in models for key in models[model]["properties"]}
    undescribed = sorted(keys - set(DESCRIPTIONS))
    if undescribed:
        raise StaleReferenceError(f"describe these keys in DESCRIPTIONS: {undescribed}")
    gone = sorted(set(DESCRIPTIONS) - keys)
    if gone:
        raise StaleReferenceError(
            f"remove from DESCRIPTIONS: these keys are no longer in the schema: {gone}"
        )
    tables = (_section(model, models[model], title, anchor) for model, title, anchor in SECTIONS)
    return "\n".join(tables)


def _section(model: str, body: dict[str, Any], title: str, anchor: str) -> str:
    heading = title if title == "Top level" else f"`{title}`"
    lines = [f"### {heading} {{#{anchor}}}", ""]
    lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    required = set(body.get("required", []))
    for key, prop in body["properties"].items():
        default = "required" if key in required else _default(prop)
        lines.append(f"| `{key}` | {_type(prop)} | {default} | {DESCRIPTIONS[f'{model}.{key}']} |")
    return "\n".join(lines) + "\n"


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in prop.get("anyOf", []) if option != {"type": "null"}]
    return options[0] if len(options) == 1 else prop


def _is_duration(prop: dict[str, Any]) -> bool:
    return bool(_without_null(prop).get("description") == _DURATION_DESCRIPTION)


def _type(prop: dict[str, Any]) -> str:
    inner = _without_null(prop)
    if _is_duration(prop):
        return "duration"
    if "enum" in inner:
        return " \\| ".join(f"`{value}`" for value in inner["enum"])
    if "const" in inner:
        return f"`{inner['const']}`"
    if inner.get("type") == "array":
        return "list of durations" if _is_duration(inner.get("items", {})) else "list"
    named = {"date-time": "datetime"}.get(inner.get("format", ""))
    scalar = inner.get("type") if inner.get("type") != "object" else None
    # What remains is a mapping: a model ($ref), free-form kwargs, or named entries.
    return named or str(scalar or "mapping")


def _default(prop: dict[str, Any]) -> str:
    value = prop.get("default")
    if value is None:
        # No default in the schema: a model filled in with its own defaults, or empty.
        return "empty" if _without_null(prop).get("type") in ("array", "object") else "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if _is_duration(prop) and isinstance(value, int):
        from taskkit.config import format_duration

        return f"`{format_duration(value)}`"
    return f"`{value}`"


def command_help() -> str:
    """Every command's ``--help``, as click renders it, under a heading of its own."""
    from taskkit.cli import cli

    return "\n".join(_help_sections(cli, "taskkit", None))


def _help_sections(
    command: click.Command, name: str, parent: click.Context | None
) -> Iterator[str]:
    ctx = command.make_context(
        name,
        [],
        parent=parent,
        resilient_parsing=True,
        terminal_width=WIDTH,
        max_content_width=WIDTH,
    )
    yield f"### `{name}`\n\n```text\n{command.get_help(ctx)}\n```\n"
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            subcommand = command.get_command(ctx, sub)
            if subcommand is not None and not subcommand.hidden:
                yield from _help_sections(subcommand, f"{name} {sub}", ctx)


PAGES: dict[str, tuple[str, Any]] = {
    "jobs-yaml.md": ("keys", lambda: key_tables(json_schema())),
    "cli.md": ("commands", command_help),
}


def rendered(page: str) -> str:
    """``page``'s text with its generated part written afresh."""
    part, make = PAGES[page]
    text = (DOCS / page).read_text(encoding="utf-8")
    start = f"<!-- generated: {part} (python docs/gen_reference.py) -->"
    end = f"<!-- end generated: {part} -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise StaleReferenceError(f"{page} lost its markers {start!r} ... {end!r}")
    return pattern.sub(lambda _: f"{start}\n\n{make()}\n{end}", text)


def stale_pages() -> list[str]:
    """The pages whose generated part differs from what the code says now."""
    return [page for page in PAGES if rendered(page) != (DOCS / page).read_text(encoding="utf-8")]


def main(argv: list[str]) -> int:
    """Rewrite the pages, or with ``--check`` report the stale ones and exit 1."""
    try:
        if argv == ["--check"]:
            stale = stale_pages()
            for page in stale:
                print(f"docs/{page} is out of date: run python docs/gen_reference.py")
            return 1 if stale else 0
        for page in PAGES:
            (DOCS / page).write_text(rendered(page), encoding="utf-8")
            print(f"wrote docs/{page}")
    except StaleReferenceError as error:
        print(f"error: docs/gen_reference.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
