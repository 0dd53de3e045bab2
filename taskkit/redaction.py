"""Hide secrets in what taskkit shows about a job: arguments, descriptions, exception text.

An argument is secret when its parameter name looks secret (``password``, ``token``,
``api_key``, ``client_secret``, ...); positional arguments are named through the
function's signature. No IO and no taskkit imports beyond config, so any module (the
registry, ``taskkit failed``) can use it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

from taskkit.config import redact_url

REDACTED = "***"
# A secret word as a whole part of a snake_case name: "password", "access_token",
# "x-api-key", "client_secret"; not "author", "passenger" or "tokenizer".
_SECRET_WORD = re.compile(
    r"(?:^|_)(?:pass(?:word|wd|phrase)?|pwd|secrets?|tokens?|api_?key|auth|authorization"
    r"|credentials?|private_?key|session_?key|cookies?|signature)(?=$|_|\d)"
)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
MIN_SCRUBBED = 4
"""Secret values shorter than this are not searched for in free text (too noisy)."""


def is_secret_name(name: str) -> bool:
    """Whether an argument or key called ``name`` should be hidden."""
    snake = re.sub(r"[^a-z0-9]+", "_", _CAMEL_HUMP.sub("_", name).lower())
    return bool(_SECRET_WORD.search(snake))


def redact(value: Any, key: str = "") -> Any:
    """``value`` with anything under a secret-looking key (password, token, ...) hidden,
    and the password of any URL in a string (``redis://:pw@host``) masked."""
    if key and is_secret_name(key):
        return REDACTED
    if isinstance(value, str):
        return _URL.sub(lambda m: redact_url(m.group(0)), value) if "://" in value else value
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def secret_values(value: Any, key: str = "") -> list[str]:
    """The strings :func:`redact` would hide in ``value``, to mask them elsewhere too."""
    if key and is_secret_name(key):
        return [str(value)] if isinstance(value, str | int) else []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in secret_values(v, str(k))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in secret_values(v)]
    return []


def positional_names(signature: inspect.Signature | None, count: int) -> list[str]:
    """The parameter name each of ``count`` positional arguments binds to ("" if unknown)."""
    names: list[str] = []
    if signature is not None:
        for parameter in signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                names += [parameter.name] * (count - len(names))
                break
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                names.append(parameter.name)
    return (names + [""] * count)[:count]


def redact_call(
    args: Sequence[Any], kwargs: Mapping[str, Any], signature: inspect.Signature | None
) -> tuple[list[Any], dict[str, Any], list[str]]:
    """Redacted ``args`` and ``kwargs``, and the secret values that were hidden."""
    names = positional_names(signature, len(args))
    shown_args = [redact(value, name) for value, name in zip(args, names, strict=True)]
    secrets = secret_values(dict(zip(names, args, strict=True))) + secret_values(dict(kwargs))
    return shown_args, redact(dict(kwargs)), secrets


def describe_call(
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    signature: inspect.Signature | None = None,
) -> str:
    """``name(arg, key=value)`` with secrets hidden: a job description safe to show."""
    shown_args, shown_kwargs, _ = redact_call(args, kwargs, signature)
    parts = [repr(a) for a in shown_args] + [f"{k}={v!r}" for k, v in shown_kwargs.items()]
    return f"{name}({', '.join(parts)})"


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with each secret value and every URL password replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_SCRUBBED:
            text = text.replace(secret, REDACTED)
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


__all__ = [
    "REDACTED",
    "describe_call",
    "is_secret_name",
    "positional_names",
    "redact",
    "redact_call",
    "scrub",
    "secret_values",
]
