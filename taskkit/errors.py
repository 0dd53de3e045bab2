"""Every error taskkit raises on purpose derives from :class:`TaskkitError`.

Each message says what is wrong, where, and how to fix it, so the command line can
print ``str(error)`` as it is and exit non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass


class TaskkitError(Exception):
    """Base class of every error taskkit raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One mistake found in a jobs.yaml, with where it is and how to fix it."""

    path: tuple[str | int, ...]
    message: str
    hint: str = ""
    file: str = ""
    line: int = 0
    column: int = 0

    @property
    def key_path(self) -> str:
        """The dotted key path, e.g. ``jobs.send_receipt.retry.max``."""
        # repr() for odd keys keeps one problem on one line (a key may hold a newline).
        parts = (
            str(part) if isinstance(part, int) or str(part).isprintable() else repr(part)
            for part in self.path
        )
        return ".".join(parts) or "<document>"

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        if self.file and not self.line:  # about the file itself, not a place in it
            return f"{self.file}: {self.message}{hint}"
        where = f"{self.file}:{self.line}:{self.column}: " if self.file else ""
        return f"{where}{self.key_path}: {self.message}{hint}"


class ConfigError(TaskkitError):
    """jobs.yaml is missing, unreadable or invalid; holds every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class UnknownJobError(TaskkitError):
    """A job name that jobs.yaml does not declare."""


class JobArgumentsError(TaskkitError):
    """Arguments that do not bind to the job's callable or do not serialize."""


class UndeclaredJobError(TaskkitError):
    """A job found in Redis that names nothing declared in jobs.yaml."""


class RedisUnavailableError(TaskkitError):
    """Redis cannot be reached; the message never carries the password."""


class AppFactoryError(TaskkitError):
    """The Flask app factory named in jobs.yaml failed or returned no Flask app."""


class WorkflowError(TaskkitError):
    """A workflow that cannot be started as asked, or a run that cannot be found."""


class ScheduleError(TaskkitError):
    """A schedule operation that cannot be carried out."""


class WorkerCrashedError(TaskkitError):
    """The worker quit on an error it did not expect; RQ logged the traceback before."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(
            "the worker quit on an unexpected error "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            "its traceback is logged above; a process manager with Restart=on-failure "
            "starts it again; please report it"
        )
        self.error = error


class QueueError(TaskkitError):
    """A queue operation that cannot be carried out (an unknown queue, a drain that timed out)."""


class DashboardError(TaskkitError):
    """The dashboard cannot be mounted or served as asked (no ``auth``, no token off loopback)."""
