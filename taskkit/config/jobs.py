"""A job's settings (at job, queue or defaults level): timeout, TTLs, retries, flow
control; and the effective settings of a job once the levels are merged. No IO.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from taskkit.config.values import (
    _FUNC,
    _NAME,
    Context,
    Duration,
    Enqueue,
    ExceptionName,
    Ttl,
    _Model,
)


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
