"""The jobs.yaml format as frozen pydantic models.

No IO here: nothing reads files, talks to Redis or imports user code, so every rule
can be tested on plain dictionaries. The loader (``loader.py``) turns YAML into the
dictionaries these models validate, and maps their errors to file:line:col.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from taskkit.cron import cron_problem
from taskkit.errors import Problem
from taskkit.urls import redact_url, url_problem

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION_FULL = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_FUNC = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
_EXCEPTION = r"^[A-Za-z_][\w.]*[.:][A-Za-z_]\w*$"


def parse_duration(value: Any) -> int:
    """Turn ``45``, ``"45s"``, ``"10m"``, ``"2h"``, ``"1d"`` or ``"1h30m"`` into seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 45s, 10m, 2h, 1d")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        if _DURATION_FULL.match(text):
            return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    raise ValueError(
        f"{value!r} is not a duration; write seconds such as 45, or a string like 45s, 10m, 2h, "
        "1d, 1h30m"
    )


def format_duration(seconds: int) -> str:
    """The shortest exact spelling of a duration: 90 -> ``1m30s``, 86400 -> ``1d``."""
    if seconds <= 0:
        return str(seconds)
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be more than zero seconds; write a duration such as 30s, 5m or 1h")
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise ValueError("must not be negative; write 0 to keep nothing, or a duration such as 1d")
    return value


_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^\s*(\d+\s*[smhdw]?\s*)+$|\$\{"},
        ],
        "description": "Seconds, or a string like 45s, 10m, 2h, 1d, 1h30m",
    }
)
Duration = Annotated[
    int, BeforeValidator(parse_duration), AfterValidator(_positive), _DURATION_SCHEMA
]
"""A positive number of seconds, written as ``45`` or ``"45s"``, ``"10m"``, ``"2h"``, ``"1d"``."""
Ttl = Annotated[
    int, BeforeValidator(parse_duration), AfterValidator(_not_negative), _DURATION_SCHEMA
]
"""Like :data:`Duration`, but 0 is allowed (keep nothing)."""


class SecretUrl(str):
    """A Redis URL whose ``repr`` and ``str`` never show the password.

    ``.reveal()`` is the only way to the real value, so it cannot reach a log line
    or an error message by accident.
    """

    __slots__ = ("_secret",)
    _secret: str

    def __new__(cls, value: str) -> SecretUrl:
        shown = super().__new__(cls, redact_url(value))
        shown._secret = value
        return shown

    def reveal(self) -> str:
        """The URL with its password, for connecting only."""
        return self._secret

    def __repr__(self) -> str:
        return f"SecretUrl({str(self)!r})"


_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")


def _check_redis_url(value: Any) -> SecretUrl:
    if isinstance(value, SecretUrl):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string like redis://localhost:6379/0")
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if not scheme:
        # Without a scheme the value may be anything, even a bare password: do not echo it.
        raise ValueError(
            "the value is not a URL (no scheme://); use redis://, rediss://, unix:// "
            "or redis+sentinel://"
        )
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(
            f"{redact_url(value)!r} is not a Redis URL; use redis://, rediss://, unix:// "
            "or redis+sentinel://"
        )
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return SecretUrl(value)


RedisUrl = Annotated[
    SecretUrl,
    PlainValidator(_check_redis_url),
    PlainSerializer(str),
    # "${" too: jobs.yaml may say url: ${REDIS_URL:-redis://localhost:6379/0}.
    WithJsonSchema({"type": "string", "pattern": r"^(redis|rediss|unix|redis\+sentinel)://|\$\{"}),
]


class _Model(BaseModel):
    # hide_input_in_errors: a ValidationError printed as is must not show a Redis password.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, hide_input_in_errors=True)


class RedisConfig(_Model):
    """Where the queues live."""

    url: RedisUrl = Field(default="redis://localhost:6379/0", validate_default=True)


class AppConfig(_Model):
    """The Flask app the worker builds once per process."""

    factory: Annotated[str, Field(pattern=_FUNC)]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    server_name: str | None = None


Context = Literal["none", "app", "request"]


ExceptionName = Annotated[str, Field(pattern=_EXCEPTION)]
"""An exception class as ``"module:attr"`` or ``"module.attr"``; imported at validate time."""


class BackoffConfig(_Model):
    """Waits that grow: ``base``, ``base * factor``, ``base * factor**2``, ... up to ``max``."""

    base: Duration
    factor: Annotated[float, Field(ge=1, le=100)] = 2
    max: Duration | None = None
    jitter: bool = False

    def intervals(self, attempts: int) -> list[int]:
        """The wait before each of ``attempts`` retries, in whole seconds (no jitter)."""
        waits = []
        for attempt in range(attempts):
            wait = self.base * self.factor**attempt
            if self.max is not None:
                wait = min(wait, self.max)
            waits.append(max(1, round(wait)))
        return waits


class RetryConfig(_Model):
    """How often and after which waits a failed job is tried again."""

    max: Annotated[int, Field(ge=0, le=1000)] = 0
    intervals: list[Ttl] = Field(default_factory=list)
    backoff: BackoffConfig | None = None
    on: list[ExceptionName] | None = None

    @model_validator(mode="after")
    def _one_kind_of_wait(self) -> RetryConfig:
        if self.backoff is not None and self.intervals:
            raise ValueError("intervals and backoff both say how long to wait; keep one of them")
        return self

    def waits(self) -> list[int]:
        """The wait before each retry: ``intervals``, or ``backoff``'s series."""
        if self.backoff is not None:
            return self.backoff.intervals(self.max)
        return list(self.intervals)


class UniqueConfig(_Model):
    """At most one such job waiting (or running): a duplicate enqueue returns that job."""

    model_config = ConfigDict(populate_by_name=True)

    key: str | None = None
    while_: Literal["queued", "queued_or_running"] = Field("queued", alias="while")


class ConcurrencyConfig(_Model):
    """At most ``limit`` jobs sharing ``key`` run (or wait in their queue) at once."""

    key: str | None = None
    limit: Annotated[int, Field(ge=1, le=100000)]


class RateLimitConfig(_Model):
    """At most ``limit`` starts per ``per`` of all jobs sharing ``key``."""

    key: str | None = None
    limit: Annotated[int, Field(ge=1, le=100000)]
    per: Duration


Enqueue = Literal["immediate", "after_commit"]


class Settings(_Model):
    """Queue settings a queue or a job may override; unset fields inherit."""

    timeout: Duration | None = None
    result_ttl: Ttl | None = None
    failure_ttl: Ttl | None = None
    retry: RetryConfig | None = None
    context: Context | None = None
    discard_on: list[ExceptionName] | None = None
    enqueue: Enqueue | None = None


class Defaults(Settings):
    """Settings every job starts from."""

    queue: Annotated[str, Field(pattern=_NAME)] = "default"


class QueueConfig(Settings):
    """A queue; its settings override the defaults for the jobs on it."""


class JobConfig(Settings):
    """One declared job."""

    func: Annotated[str, Field(pattern=_FUNC)]
    queue: Annotated[str, Field(pattern=_NAME)] | None = None
    description: str | None = None
    unique: UniqueConfig | None = None
    concurrency: ConcurrencyConfig | None = None
    rate_limit: RateLimitConfig | None = None


class ScheduleConfig(_Model):
    """A recurring (or one-off) run of a declared job, or of a workflow."""

    job: str | None = None
    workflow: str | None = None
    cron: str | None = None
    every: Duration | None = None
    at: datetime | None = None
    timezone: str = "UTC"
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    overlap: Literal["skip", "allow"] = "skip"
    misfire: Literal["once", "skip"] = "once"
    grace: Duration | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ScheduleConfig:
        if (self.job is None) == (self.workflow is None):
            found = "both" if self.job is not None else "neither"
            raise ValueError(
                f"a schedule names exactly one of job, workflow (found {found}); keep one"
            )
        if self.workflow is not None and self.args:
            raise ValueError(
                "a workflow takes its inputs as keywords; move args: into kwargs:, by input name"
            )
        return self

    @property
    def target(self) -> str:
        """What a tick starts, as lists show it: the job's name, or ``workflow:NAME``."""
        return self.job if self.job is not None else f"workflow:{self.workflow}"

    @model_validator(mode="after")
    def _one_form(self) -> ScheduleConfig:
        forms = [name for name in ("cron", "every", "at") if getattr(self, name) is not None]
        if len(forms) != 1:
            found = ", ".join(forms) if forms else "none"
            raise ValueError(
                f"a schedule needs exactly one of cron, every, at (found {found}); keep one of them"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The schedule's timezone (validated at load time)."""
        return ZoneInfo(self.timezone)


class WorkerConfig(_Model):
    """How workers find the jobs of workers that died, and how long they wait for Redis.

    A busy worker renews its job's heartbeat every ``heartbeat_interval``; a job whose
    heartbeat is ``heartbeat_grace`` overdue is abandoned, and the next maintenance pass
    of any running worker (every ``maintenance_interval``) retries or fails it.
    """

    heartbeat_interval: Duration = 10
    heartbeat_grace: Duration = 20
    maintenance_interval: Duration = 30
    redis_timeout: Duration = 300


_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]
"""A Python keyword argument's name: what a workflow's inputs, each and results bind to."""


class StepConfig(_Model):
    """One step of a workflow: a declared job, run once, or once per item of a list input.

    The job is called with the workflow's inputs that its signature accepts, plus the
    item as ``each`` (fan-out over the input ``in``) and, with ``results``, the list of
    the results of the fanned-out step it comes after, in item order (fan-in).
    """

    # "in" is a Python keyword: the field is in_, written "in" in jobs.yaml.
    model_config = ConfigDict(**_Model.model_config, populate_by_name=True)

    job: str
    after: list[str] = Field(default_factory=list)
    each: Identifier | None = None
    in_: Identifier | None = Field(default=None, alias="in")
    results: Identifier | None = None
    on_failure: Literal["skip", "run"] = "skip"

    @model_validator(mode="after")
    def _each_with_in(self) -> StepConfig:
        if (self.each is None) != (self.in_ is None):
            given, missing = ("each", "in") if self.in_ is None else ("in", "each")
            raise ValueError(
                f"{given} without {missing}; a fan-out needs both: each: item, in: a_list_input"
            )
        return self


class WorkflowConfig(_Model):
    """Several declared jobs run as one unit: chains, fan-out and fan-in."""

    inputs: list[Identifier] = Field(default_factory=list)
    steps: Annotated[dict[Annotated[str, Field(pattern=_NAME)], StepConfig], Field(min_length=1)]
    ttl: Duration = 86400
    """How long a run, its jobs and their results are kept, counted from its start."""
    description: str | None = None


Serializer = Literal["json", "pickle"]


class TaskkitConfig(_Model):
    """The whole of a jobs.yaml, version 1."""

    version: Literal[1]
    redis: RedisConfig = Field(default_factory=RedisConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    app: AppConfig | None = None
    pythonpath: list[str] = Field(default_factory=list)
    serializer: Serializer = "json"
    defaults: Defaults = Field(default_factory=Defaults)
    queues: dict[Annotated[str, Field(pattern=_NAME)], QueueConfig] = Field(default_factory=dict)
    jobs: dict[Annotated[str, Field(pattern=_NAME)], JobConfig] = Field(default_factory=dict)
    schedules: dict[Annotated[str, Field(pattern=_NAME)], ScheduleConfig] = Field(
        default_factory=dict
    )
    workflows: dict[Annotated[str, Field(pattern=_NAME)], WorkflowConfig] = Field(
        default_factory=dict
    )

    @property
    def queue_names(self) -> list[str]:
        """Queues in priority order: declared ones first, then any only jobs name."""
        names = list(self.queues)
        for job in self.effective_jobs().values():
            if job.queue not in names:
                names.append(job.queue)
        return names

    def effective_jobs(self) -> dict[str, EffectiveJob]:
        """Every job with its settings resolved: defaults, then queue, then job."""
        return {name: self._effective(name, job) for name, job in self.jobs.items()}

    def _effective(self, name: str, job: JobConfig) -> EffectiveJob:
        queue_name = job.queue or self.defaults.queue
        layers: list[Settings] = [self.defaults]
        if queue_name in self.queues:
            layers.append(self.queues[queue_name])
        layers.append(job)

        def pick(field: str, fallback: Any) -> Any:
            value = fallback
            for layer in layers:
                if getattr(layer, field) is not None:
                    value = getattr(layer, field)
            return value

        default_context = "app" if self.app is not None else "none"
        return EffectiveJob(
            name=name,
            func=job.func,
            queue=queue_name,
            context=pick("context", default_context),
            timeout=pick("timeout", 180),
            result_ttl=pick("result_ttl", 86400),
            failure_ttl=pick("failure_ttl", 7 * 86400),
            retry=pick("retry", RetryConfig()),
            description=job.description,
            discard_on=pick("discard_on", []),
            enqueue=pick("enqueue", "immediate"),
            unique=job.unique,
            concurrency=job.concurrency,
            rate_limit=job.rate_limit,
        )


class EffectiveJob(_Model):
    """A job's settings after inheritance; what enqueue and the worker use."""

    name: str
    func: str
    queue: str
    context: Context
    timeout: int
    result_ttl: int
    failure_ttl: int
    retry: RetryConfig
    description: str | None = None
    discard_on: list[str] = Field(default_factory=list)
    enqueue: Enqueue = "immediate"
    unique: UniqueConfig | None = None
    concurrency: ConcurrencyConfig | None = None
    rate_limit: RateLimitConfig | None = None

    @property
    def rq_func_name(self) -> str:
        """The dotted path RQ stores for this job: ``pkg.mod.func``."""
        module, _, attr = self.func.partition(":")
        return f"{module}.{attr}"


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


def did_you_mean(value: str, choices: list[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``value``, if one is close enough."""
    import difflib

    matches = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


__all__ = [
    "AppConfig",
    "BackoffConfig",
    "ConcurrencyConfig",
    "Defaults",
    "Duration",
    "EffectiveJob",
    "JobConfig",
    "QueueConfig",
    "RateLimitConfig",
    "RedisConfig",
    "RetryConfig",
    "ScheduleConfig",
    "SecretUrl",
    "StepConfig",
    "TaskkitConfig",
    "Ttl",
    "UniqueConfig",
    "WorkerConfig",
    "WorkflowConfig",
    "check_references",
    "did_you_mean",
    "format_duration",
    "parse_duration",
    "redact_url",
]
