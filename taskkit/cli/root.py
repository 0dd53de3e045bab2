"""The ``taskkit`` command: its group of commands, the console entry point, and the same
commands as ``flask taskkit``.

Errors end here, at the edge: every one is printed as one line (every problem of a
jobs.yaml on a line of its own) with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from taskkit import __version__
from taskkit.cli import config_commands, legacy, observe, ops, queues, run, workflows
from taskkit.cli.config_commands import ENV_FILES
from taskkit.cli.group import CliError, TaskkitGroup, show_click_error, without_passwords
from taskkit.cli.schedules import schedules
from taskkit.errors import TaskkitError


@click.group(cls=TaskkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="taskkit")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """taskkit: declarative background and recurring jobs for Flask on RQ.

    Every command first reads the nearest .flaskenv and .env as flask does (variables
    already set win; TASKKIT_SKIP_DOTENV=1 turns it off), then jobs.yaml.
    """
    from taskkit.loader.envfiles import load_env_files

    ctx.meta[ENV_FILES] = load_env_files()


COMMAND_GROUPS = (
    config_commands.COMMANDS,
    run.COMMANDS,
    [schedules],
    ops.COMMANDS,
    queues.COMMANDS,
    observe.COMMANDS,
    workflows.COMMANDS,
    legacy.COMMANDS,
)
for commands in COMMAND_GROUPS:
    for command in commands:
        cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one message and a non-zero exit for every error, no traceback."""
    try:
        cli.main(args=argv, prog_name="taskkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        show_click_error(error)
        sys.exit(error.exit_code)
    except TaskkitError as error:  # raised before a command ran, e.g. by an option
        CliError(error).show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("TASKKIT_DEBUG"):
            raise
        click.echo(
            f"error: unexpected {type(error).__name__}: {without_passwords(str(error))} "
            "(set TASKKIT_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)


def flask_group() -> click.Group:
    """The same commands as ``flask taskkit ...``, defaulting to the app's jobs.yaml."""
    from flask.cli import ScriptInfo

    # flask has read .env and .flaskenv (or was told not to) before it built the app.
    @click.group("taskkit", cls=TaskkitGroup, help=cli.help)
    @click.pass_context
    def group(ctx: click.Context) -> None:
        app = ctx.ensure_object(ScriptInfo).load_app()
        state = app.extensions.get("taskkit")
        if state is not None:
            ctx.obj = {"default_config": str(state.registry.path)}

    for command in cli.commands.values():
        group.add_command(command)
    return group


__all__ = ["cli", "flask_group", "main"]
