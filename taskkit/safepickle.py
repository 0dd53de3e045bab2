"""Reading pickles that other programs wrote to Redis, without running their code.

RQ pickles a job as ``(func_name, instance, args, kwargs)``: strings, numbers,
containers, and sometimes a datetime or a Decimal among the arguments. Plain
:func:`pickle.loads` would also call anything a forged entry names (``os.system``), so
these readers allow a short list of value types and refuse every other name with
:class:`UnsafePickleError`, before it is imported or called.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import zlib
from typing import Any

ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("collections", "OrderedDict"),
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("uuid", "UUID"),
    }
)
"""The only names a pickle read here may refer to: value types that run no user code."""


class UnsafePickleError(ValueError):
    """A pickle names something other than the value types in :data:`ALLOWED`."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(
                f"it refers to {module}.{name}, which is not a plain value type "
                "(unpickling it could run code)"
            )
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """Unpickle ``data`` if it names only :data:`ALLOWED` types; else UnsafePickleError."""
    return _Restricted(io.BytesIO(data)).load()


def job_field(raw: bytes | None, *, compressed: bool = False) -> tuple[Any, str]:
    """An RQ job hash field (``data`` is zlib-compressed) and the format it was in.

    JSON first, as taskkit writes it; then a restricted unpickle. Raises ValueError
    (:class:`UnsafePickleError` among them) when it is neither.
    """
    if raw is None:
        raise ValueError("the field is missing")
    if compressed:
        with contextlib.suppress(zlib.error):  # RQ stores it uncompressed too, and reads both
            raw = zlib.decompress(raw)
    try:
        return json.loads(raw.decode("utf-8")), "json"
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        return loads(raw), "pickle"
    except UnsafePickleError:
        raise
    except Exception as error:  # truncated or not a pickle at all
        raise ValueError(f"it is neither JSON nor a pickle ({type(error).__name__})") from None


__all__ = ["ALLOWED", "UnsafePickleError", "job_field", "loads"]
