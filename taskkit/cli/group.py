"""The click group class of every taskkit command, and errors turned into lines at the edge.

Every command raises :class:`~taskkit.errors.TaskkitError` for a mistake a user can make;
:class:`TaskkitGroup` turns it into one line on stderr and a non-zero exit, for
``taskkit`` and ``flask taskkit`` alike, so no command needs its own ``try``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any

import click

from taskkit.errors import ConfigError, TaskkitError


class TaskkitGroup(click.Group):
    """A click group whose commands report taskkit's errors as lines, not tracebacks.

    As Flask's ``AppGroup`` gives every command an app context, this class gives every
    command (and every group below it) the same error handling.
    """

    group_class = type  # subgroups made with @group.group() are TaskkitGroups too

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a :class:`TaskkitError` becomes a :class:`CliError`."""
        try:
            return super().invoke(ctx)
        except TaskkitError as error:
            raise CliError(error) from None


class CliError(click.ClickException):
    """A :class:`TaskkitError` on its way out: click shows it and exits with its code."""

    def __init__(self, error: TaskkitError) -> None:
        super().__init__(str(error))
        self.error = error
        vars(self)["exit_code"] = error.exit_code  # click declares it per class; ours vary

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the error's lines on stderr."""
        for line in error_lines(self.error):
            click.echo(line, file=file, err=file is None)


def error_lines(error: TaskkitError) -> list[str]:
    """What the command line prints for ``error``: every problem of a jobs.yaml on its own
    line and a count, else one line."""
    if not isinstance(error, ConfigError):
        return [f"error: {error}"]
    if len(error.problems) == 1 and not error.problems[0].line:  # the file itself: a path error
        return [f"error: {error.problems[0]}"]
    lines = [str(problem) for problem in error.problems]
    count = len(error.problems)
    # Each problem line has the full path; the summary names the file briefly.
    files = sorted({Path(p.file).name for p in error.problems if p.file}) or ["jobs.yaml"]
    noun = "problem" if count == 1 else "problems"
    return [*lines, f"error: {count} {noun} in {', '.join(files)}"]


def show_click_error(error: click.ClickException) -> None:
    """Print a click error in taskkit's style: ``error: ...``, after the usage for a
    usage error, as click would print it with ``Error: ...``."""
    if isinstance(error, CliError):
        error.show()
        return
    ctx = error.ctx if isinstance(error, click.UsageError) else None
    if ctx is not None:
        click.echo(ctx.get_usage(), err=True)
        if ctx.command.get_help_option(ctx) is not None:
            click.echo(f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.", err=True)
        click.echo(err=True)
    click.echo(f"error: {error.format_message()}", err=True)


def without_passwords(text: str) -> str:
    """Any URL in ``text`` with its password hidden: unexpected errors may quote one."""
    from taskkit.config import redact_url

    return re.sub(r"[a-z+]+://\S+", lambda m: redact_url(m.group(0)), text)


__all__ = ["CliError", "TaskkitGroup", "error_lines", "show_click_error", "without_passwords"]
