"""A schedule: cron, every or at, what it runs, and its overlap and misfire rules. No IO.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    Field,
    model_validator,
)

from taskkit.config.values import Duration, _Model


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
