"""Flow control of one declared job, resolved: retry filters, unique and limit keys.

jobs.yaml names exceptions as strings and keys as ``str.format`` templates; this module
turns them into what enqueue and the worker use (exception classes, keys rendered from a
call's bound arguments), and checks both at validate time, with file:line errors, so a
typo fails ``taskkit validate`` instead of a job in production.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import random
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from taskkit.config import EffectiveJob, RetryConfig, Settings, format_duration

if TYPE_CHECKING:
    from taskkit.errors import Problem
    from taskkit.loader import LoadedConfig
    from taskkit.loader.resolution import ResolvedJob

KEY_PREFIX = "taskkit:"
"""Every flow-control key taskkit writes starts with this, apart from the job's own."""


class _BadNameError(Exception):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def import_exception(name: str) -> type[BaseException]:
    """The exception class ``"module:attr"`` (or ``"module.attr"``) names."""
    module_name, sep, attr = name.partition(":")
    if not sep:
        module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise _BadNameError(
                f"module {module_name!r} (of exception {name!r}) not found",
                "check the spelling, or install the package that defines it",
            ) from None
        raise _BadNameError(
            f"importing {module_name!r} raised ModuleNotFoundError: {error}",
            "the module exists but one of its own imports failed; fix that import",
        ) from None
    except Exception as error:  # the module itself is broken: say so, never a traceback
        raise _BadNameError(
            f"importing {module_name!r} raised {type(error).__name__}: {error}",
            "the module exists but fails when imported; fix the error in it",
        ) from None
    value = getattr(module, attr, None)
    if not (isinstance(value, type) and issubclass(value, BaseException)):
        what = "nothing" if value is None else f"a {type(value).__name__}"
        raise _BadNameError(
            f"{name!r} is {what}, not an exception class",
            f"name an exception class, as {module_name}:SomeError",
        )
    return value


def _classes(names: list[str]) -> tuple[type[BaseException], ...]:
    return tuple(import_exception(name) for name in names)


@dataclass(frozen=True)
class KeyTemplate:
    """A ``str.format`` template over a job's bound arguments (``"sync:{account_id}"``)."""

    template: str

    def fields(self) -> list[str]:
        """The argument names the template uses (``{user.id}`` uses ``user``)."""
        names = []
        for _, field, _, _ in string.Formatter().parse(self.template):
            if field is not None:
                names.append(field.split(".", 1)[0].split("[", 1)[0])
        return names

    def render(self, arguments: Mapping[str, Any]) -> str:
        """The key for one call."""
        return self.template.format_map(arguments)


def bound_arguments(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Every parameter of the callable with the value this call gives it (defaults too)."""
    if signature is None:
        return {**{str(i): value for i, value in enumerate(args)}, **kwargs}
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def default_unique_key(name: str, arguments: Mapping[str, Any]) -> str:
    """The job's name and a digest of all its arguments (JSON, keys sorted)."""
    text = json.dumps(arguments, sort_keys=True, default=repr, separators=(",", ":"))
    return f"{name}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class FlowPolicy:
    """What a declared job's flow-control keys mean at run time."""

    settings: EffectiveJob
    signature: inspect.Signature | None

    @cached_property
    def retry_on(self) -> tuple[type[BaseException], ...] | None:
        """Retry only these (None: retry any exception)."""
        names = self.settings.retry.on
        return None if names is None else _classes(names)

    @cached_property
    def discard_on(self) -> tuple[type[BaseException], ...]:
        """Fail at once on these, whatever retries are left."""
        return _classes(self.settings.discard_on)

    @property
    def jitter(self) -> bool:
        """Whether each retry's wait is randomised (backoff: jitter: true)."""
        backoff = self.settings.retry.backoff
        return backoff is not None and backoff.jitter

    def no_retry_reason(self, error: BaseException) -> str | None:
        """Why ``error`` must not be retried, or None when the retry policy applies."""
        if self.discard_on and isinstance(error, self.discard_on):
            return f"discarded: {_qualified(type(error))} is in discard_on, so it is not retried"
        if self.retry_on is not None and not isinstance(error, self.retry_on):
            return f"not retried: {_qualified(type(error))} is not in retry.on"
        return None

    def unique_key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
        """The unique key of this call, or None for a job without ``unique``."""
        unique = self.settings.unique
        if unique is None:
            return None
        arguments = bound_arguments(self.signature, args, kwargs)
        if unique.key is None:
            return default_unique_key(self.settings.name, arguments)
        return KeyTemplate(unique.key).render(arguments)

    def concurrency_key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
        """The concurrency key of this call (default: the job's name), or None."""
        limit = self.settings.concurrency
        if limit is None:
            return None
        if limit.key is None:
            return self.settings.name
        return KeyTemplate(limit.key).render(bound_arguments(self.signature, args, kwargs))

    def rate_key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
        """The rate limit key of this call (default: the job's name), or None."""
        limit = self.settings.rate_limit
        if limit is None:
            return None
        if limit.key is None:
            return self.settings.name
        return KeyTemplate(limit.key).render(bound_arguments(self.signature, args, kwargs))


def flow_keys(settings: EffectiveJob) -> str:
    """The job's flow-control keys in one short line (``taskkit list``), or ``-``."""
    parts = []
    if settings.unique is not None:
        key = settings.unique.key or "name+arguments"
        parts.append(f"unique {key} while {settings.unique.while_}")
    if settings.concurrency is not None:
        key = settings.concurrency.key or settings.name
        parts.append(f"concurrency {key} <= {settings.concurrency.limit}")
    if settings.rate_limit is not None:
        limit = settings.rate_limit
        per = format_duration(limit.per)
        parts.append(f"rate_limit {limit.key or settings.name} {limit.limit} per {per}")
    if settings.enqueue == "after_commit":
        parts.append("enqueue after_commit")
    return "; ".join(parts) or "-"


def jittered(wait: float) -> float:
    """Equal jitter: half the wait, plus a random part of the other half.

    Retries of jobs that failed together (an outage) spread out instead of hitting the
    recovered service at the same instant, and no wait is shorter than half its value.
    """
    return wait / 2 + random.uniform(0, wait / 2)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


# -- validate-time checks -----------------------------------------------------------------


def flow_problems(loaded: LoadedConfig, jobs: Mapping[str, ResolvedJob]) -> list[Problem]:
    """Exception names that do not import, and key templates that do not fit the callable."""
    return [
        *_exception_problems(loaded),
        *_key_problems(loaded, jobs),
        *_unlimited_senders(loaded),
    ]


def _unlimited_senders(loaded: LoadedConfig) -> Iterator[Problem]:
    """Schedules and workflow steps naming a job with ``concurrency``: refused, because
    they send their jobs in one transaction, where RQ cannot take a slot."""
    config = loaded.config
    limited = {name for name, job in config.jobs.items() if job.concurrency is not None}
    senders: list[tuple[tuple[str, ...], str]] = [
        (("schedules", name, "job"), schedule.job)
        for name, schedule in config.schedules.items()
        if schedule.job is not None  # a schedule of a workflow: its steps are checked below
    ]
    for workflow_name, workflow in config.workflows.items():
        for step_name, step in workflow.steps.items():
            senders.append((("workflows", workflow_name, "steps", step_name, "job"), step.job))
    for path, job in senders:
        if job in limited:
            yield loaded.positions.problem(
                path,
                f"job {job!r} has concurrency:, which {path[0]} do not honour in this version",
                f"enqueue {job!r} from a small job instead, or remove its concurrency:",
            )


def _layers(loaded: LoadedConfig) -> Iterator[tuple[tuple[str, ...], Settings]]:
    config = loaded.config
    yield ("defaults",), config.defaults
    for name, queue in config.queues.items():
        yield ("queues", name), queue
    for name, job in config.jobs.items():
        yield ("jobs", name), job


def _exception_problems(loaded: LoadedConfig) -> Iterator[Problem]:
    for path, layer in _layers(loaded):
        retry: RetryConfig | None = layer.retry
        lists: list[tuple[tuple[str, ...], list[str] | None]] = [
            (("retry", "on"), retry.on if retry is not None else None),
            (("discard_on",), layer.discard_on),
        ]
        for where, names in lists:
            for index, name in enumerate(names or []):
                try:
                    import_exception(name)
                except _BadNameError as bad:
                    yield loaded.positions.problem((*path, *where, index), bad.message, bad.hint)


def _key_problems(loaded: LoadedConfig, jobs: Mapping[str, ResolvedJob]) -> Iterator[Problem]:
    for name, declared in jobs.items():
        job = loaded.config.jobs[name]
        for section in ("unique", "concurrency", "rate_limit"):
            entry = getattr(job, section)
            if entry is None or entry.key is None:
                continue
            problem = _template_problem(entry.key, declared.signature)
            if problem is not None:
                message, hint = problem
                yield loaded.positions.problem(("jobs", name, section, "key"), message, hint)


def _template_problem(template: str, signature: inspect.Signature | None) -> tuple[str, str] | None:
    key = KeyTemplate(template)
    try:
        fields = key.fields()
    except ValueError as error:
        return f"key {template!r} is not a str.format template ({error})", (
            "write fields as {name}; double a literal brace: {{ }}"
        )
    if signature is None:
        return None
    params = signature.parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for field in fields:
        if field == "" or field.isdigit():
            return f"key {template!r} uses a positional field {{{field}}}", (
                "name the argument instead, as {account_id}"
            )
        if field not in params and not takes_any:
            names = ", ".join(params) or "none"
            return f"key {template!r} uses {{{field}}}, which the job does not take", (
                f"use the names of its parameters: {names}"
            )
    return None


__all__ = [
    "KEY_PREFIX",
    "FlowPolicy",
    "KeyTemplate",
    "bound_arguments",
    "default_unique_key",
    "flow_keys",
    "flow_problems",
    "import_exception",
    "jittered",
]
