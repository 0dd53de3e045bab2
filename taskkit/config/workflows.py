"""A workflow: its inputs and steps (chains, fan-out, fan-in). No IO.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from taskkit.config.values import _NAME, Duration, Identifier, _Model


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
