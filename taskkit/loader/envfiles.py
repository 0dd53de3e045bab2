"""``.env`` and ``.flaskenv`` for the ``taskkit`` command, read as ``flask`` reads them.

The same search (the nearest of each, from the working directory up), the same
precedence (``.env`` over ``.flaskenv``, the environment over both), so ``taskkit
run-worker`` and ``flask run`` see the same ``REDIS_URL``. ``TASKKIT_SKIP_DOTENV=1``
turns it off. Each file is read within the same bounds as jobs.yaml.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import dotenv

from taskkit.loader.files import read_text

SKIP_VARIABLE = "TASKKIT_SKIP_DOTENV"
_NAMES = (".flaskenv", ".env")  # later files win


def skipped() -> bool:
    """Whether ``$TASKKIT_SKIP_DOTENV`` turns the files off."""
    return os.environ.get(SKIP_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def load_env_files() -> list[Path]:
    """Set the variables of the nearest ``.flaskenv`` and ``.env`` that the environment
    does not set already; return the files read (none when :func:`skipped`).

    Raises :class:`~taskkit.errors.ConfigError` for a file that cannot be read.
    """
    if skipped():
        return []
    values: dict[str, str | None] = {}
    read: list[Path] = []
    for name in _NAMES:
        found = dotenv.find_dotenv(name, usecwd=True)  # only regular files are found
        if not found:
            continue
        text = read_text(Path(found))
        values |= dotenv.dotenv_values(stream=io.StringIO(text))
        read.append(Path(found))
    for key, value in values.items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
    return read


__all__ = ["SKIP_VARIABLE", "load_env_files", "skipped"]
