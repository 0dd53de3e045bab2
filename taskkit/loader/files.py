"""Where jobs.yaml is and reading it: the default path, and a read that is bounded for
every kind of path (a FIFO, a device, a directory or a symlink loop is one clear line,
never a hang or an unbounded read)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from taskkit.errors import ConfigError, Problem

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A jobs.yaml larger than this is refused before it is parsed."""

_CHUNK = 64 * 1024
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def default_config_path() -> Path:
    """``$TASKKIT_CONFIG`` if set, else ``./jobs.yaml``."""
    return Path(os.environ.get("TASKKIT_CONFIG") or "jobs.yaml")


class FileProblemError(Exception):
    """Why a file cannot be read, and how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def read_text(file: Path, *, missing_hint: str = "") -> str:
    """The UTF-8 text of the regular file ``file``, at most :data:`MAX_FILE_BYTES`.

    Raises :class:`ConfigError` with one problem naming the full path it tried.
    """
    try:
        return read_bytes(file, missing_hint=missing_hint).decode("utf-8")
    except FileProblemError as error:
        message, hint = error.message, error.hint
    except UnicodeDecodeError as error:
        message, hint = f"not UTF-8 text ({error.reason})", "save the file as UTF-8"
    raise ConfigError([Problem((), message, hint, os.path.abspath(file))])


def read_bytes(file: Path, *, missing_hint: str = "") -> bytes:
    """The bytes of the regular file ``file``, at most :data:`MAX_FILE_BYTES`.

    Anything else is refused before it is read: a FIFO with no writer would block for
    ever and a device such as /dev/zero never ends. Raises :class:`FileProblemError`.
    """
    try:
        _check_kind(os.stat(file).st_mode)
        # O_NONBLOCK: a FIFO swapped in after the check must not block the open either.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise _os_problem(error, missing_hint) from None
    try:
        size = os.fstat(fd).st_size
        _check_kind(os.fstat(fd).st_mode)  # what was opened, whatever the path now names
        if size > MAX_FILE_BYTES:
            raise FileProblemError(
                f"the file is {size} bytes, more than the {MAX_FILE_BYTES} allowed",
                "split generated schedules out or trim the file",
            )
        return _read_at_most(fd, MAX_FILE_BYTES)
    except OSError as error:
        raise _os_problem(error, missing_hint) from None
    finally:
        os.close(fd)


def _check_kind(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((word for test, word in _KINDS if test(mode)), "not a regular file")
    raise FileProblemError(f"is {kind}, not a file", "point it at a jobs.yaml file")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    # The size said by stat is not trusted: a file may grow, and /proc files say 0.
    while chunk := os.read(fd, _CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise FileProblemError(
                f"the file is more than the {limit} bytes allowed",
                "split generated schedules out or trim the file",
            )
    return b"".join(chunks)


def _os_problem(error: OSError, missing_hint: str) -> FileProblemError:
    if isinstance(error, FileNotFoundError):
        return FileProblemError(
            "no such file",
            missing_hint
            or "create it (see docs/jobs-yaml.md), or point -c/--config or TASKKIT_CONFIG at yours",
        )
    if error.errno == errno.ELOOP:
        return FileProblemError(
            "cannot be read: a symbolic link on the path points back at itself",
            "fix the link, or give the file's real path",
        )
    return FileProblemError(
        f"cannot be read: {error.strerror or error}", "check the path and permissions"
    )


__all__ = ["MAX_FILE_BYTES", "FileProblemError", "default_config_path", "read_bytes", "read_text"]
