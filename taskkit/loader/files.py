"""Where jobs.yaml is and reading it: the default path and the bounded, checked read."""

from __future__ import annotations

import os
from pathlib import Path

from taskkit.errors import ConfigError, Problem

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A jobs.yaml larger than this is refused before it is parsed."""


def default_config_path() -> Path:
    """``$TASKKIT_CONFIG`` if set, else ``./jobs.yaml``."""
    return Path(os.environ.get("TASKKIT_CONFIG") or "jobs.yaml")


def read_text(file: Path) -> str:
    """The text of ``file``; :class:`ConfigError` with one problem if it cannot be read."""
    where = Problem((), "", "", str(file))
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                [
                    _at(
                        where,
                        f"the file is {size} bytes, more than the {MAX_FILE_BYTES} allowed",
                        "split generated schedules out or trim the file",
                    )
                ]
            )
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                _at(
                    where,
                    "no such file",
                    "create it (see the README's jobs.yaml reference), or point "
                    "-c/--config or TASKKIT_CONFIG at yours",
                )
            ]
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            [_at(where, f"not UTF-8 text ({error.reason})", "save the file as UTF-8")]
        ) from None
    except OSError as error:
        raise ConfigError(
            [_at(where, f"cannot be read: {error.strerror}", "check the path and permissions")]
        ) from None


def _at(where: Problem, message: str, hint: str) -> Problem:
    return Problem((), message, hint, where.file, 1, 1)


__all__ = ["MAX_FILE_BYTES", "default_config_path", "read_text"]
