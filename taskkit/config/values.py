"""Values of jobs.yaml that several sections share: durations, Redis URLs kept secret,
names, and the base of every model. No IO.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

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


Context = Literal["none", "app", "request"]


ExceptionName = Annotated[str, Field(pattern=_EXCEPTION)]
"""An exception class as ``"module:attr"`` or ``"module.attr"``; imported at validate time."""


Enqueue = Literal["immediate", "after_commit"]


_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]
"""A Python keyword argument's name: what a workflow's inputs, each and results bind to."""


Serializer = Literal["json", "pickle"]


def did_you_mean(value: str, choices: list[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``value``, if one is close enough."""
    import difflib

    matches = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None
