"""A declared job: its jobs.yaml settings with the callable resolved, and the checks its
arguments go through in the caller's process (they fit the signature; they serialize)."""

from __future__ import annotations

import inspect
import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from rq import Retry

from taskkit.config import EffectiveJob
from taskkit.errors import JobArgumentsError
from taskkit.flow import FlowPolicy
from taskkit.loader.resolution import Mismatch


@dataclass(frozen=True)
class DeclaredJob:
    """A job from jobs.yaml with its callable resolved and its signature known."""

    settings: EffectiveJob
    func: Callable[..., Any]
    signature: inspect.Signature | None

    @property
    def name(self) -> str:
        """The job's name in jobs.yaml."""
        return self.settings.name

    def bind(self, args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`JobArgumentsError` unless the arguments fit the callable."""
        if self.signature is None:
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            mismatch = Mismatch.of(self.signature, kwargs, error)
            fix = mismatch.hint or "pass the arguments it takes"
            raise JobArgumentsError(
                f"job {self.name!r}: {mismatch.message} "
                f"(the callable is {self.settings.func}{self.signature}); {fix}"
            ) from None

    @property
    def retry(self) -> Retry | None:
        """The declared retry policy as RQ's :class:`rq.Retry`."""
        policy = self.settings.retry
        if policy.max <= 0:
            return None
        return Retry(max=policy.max, interval=policy.waits() or 0)

    @cached_property
    def flow(self) -> FlowPolicy:
        """Its flow control (retry filters, unique and limit keys), resolved on first use."""
        return FlowPolicy(self.settings, self.signature)


@dataclass(frozen=True)
class Wire:
    """How arguments travel to the worker, and what to tell a caller whose don't."""

    name: str
    dumps: Callable[[Any], Any]
    fix: str


WIRES = {
    "json": Wire(
        "JSON",
        json.dumps,
        "pass plain data (ids, strings, numbers, lists, dicts), "
        "or set serializer: pickle in jobs.yaml",
    ),
    "pickle": Wire(
        "pickle", pickle.dumps, "pass plain data (ids, strings, numbers) or picklable objects"
    ),
}


def check_serializable(
    declared: DeclaredJob, args: tuple[Any, ...], kwargs: dict[str, Any], wire: Wire
) -> None:
    """Raise :class:`JobArgumentsError` naming the first argument the serializer rejects."""
    try:
        wire.dumps([args, kwargs])
    except Exception:  # each serializer raises its own kinds: find the culprit below
        pass
    else:
        return
    labelled = [(f"argument {i + 1}", value) for i, value in enumerate(args)]
    labelled += [(f"argument {key!r}", value) for key, value in kwargs.items()]
    for label, value in labelled:
        try:
            wire.dumps(value)
        except Exception as error:
            raise JobArgumentsError(
                f"job {declared.name!r}: {label} ({type(value).__name__}) cannot be sent as "
                f"{wire.name} ({type(error).__name__}: {error}); {wire.fix}"
            ) from None
    raise JobArgumentsError(
        f"job {declared.name!r}: the arguments cannot be sent as {wire.name}; {wire.fix}"
    )
