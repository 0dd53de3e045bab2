"""What a long-running command (``run-worker``, ``run-scheduler``, ``dev``) does with
SIGTERM/SIGINT once its work has stopped: the process leaves at once with the status it
was leaving with, so a thread an app left running never needs a SIGKILL. How a worker
stops while it works is :mod:`taskkit.worker.stopping`'s.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from typing import Any


def exit_at_the_next_stop_signal() -> None:
    """A long-running command has stopped: a further SIGTERM/SIGINT ends it at once, with
    the exit status it is leaving with, and never as a death by signal.

    The app may leave a thread running that delays the interpreter's exit: a signal
    then exits at once (``os._exit``). Once Python runs its exit handlers it resets the
    handlers it installed to the default one, so a signal a process manager repeats then
    would turn a clean exit 0 into "killed by SIGTERM": from there on they are ignored.
    """
    code = 0 if sys.exc_info()[0] is None else 1

    def exit_now(signum: int, frame: Any) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, RuntimeError, ValueError):  # closed, or busy
                stream.flush()
        os._exit(code)

    signal.signal(signal.SIGTERM, exit_now)
    signal.signal(signal.SIGINT, exit_now)
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


__all__ = ["exit_at_the_next_stop_signal"]
