"""Log set-up for the long-running commands: readable text, or one JSON object per line.

The per-job line carries its facts as record attributes (``job``, ``queue``, ``job_id``,
``duration_ms``, ``outcome``), so the JSON form has them as fields for log shippers.

Values from Redis or from a job's arguments can hold anything, newlines included; in a
text log a newline would let them write a line of their own ("FAKE INFO ..."). Such
values are passed through :func:`escape_controls` where taskkit logs them, and the text
format escapes control characters in every message (RQ's included) as a safety net.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LEVEL_VARIABLE = "TASKKIT_LOG_LEVEL"
FORMAT_VARIABLE = "TASKKIT_LOG_FORMAT"
"""Carry ``--log-level`` / ``--log-format`` to processes a worker starts afresh (spawn)."""
JOB_FIELDS = ("job", "queue", "job_id", "duration_ms", "outcome", "error", "schedule", "tick")
"""Record attributes copied into JSON lines when present."""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: object) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``): one line."""
    value = str(text)
    if _CONTROL.search(value) is None:
        return value
    return _CONTROL.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _continued(text: str) -> str:
    """Multi-line text (a traceback, RQ's failure message) with every line after the first
    indented and control characters escaped, so no part of it can pass for a log line."""
    if _CONTROL.search(text) is None:
        return text
    first, *rest = text.split("\n")
    return "\n".join([escape_controls(first), *("    " + escape_controls(line) for line in rest)])


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE``; no message or traceback can start a line of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """The line, with the message's control characters escaped (see :func:`_continued`)."""
        if _CONTROL.search(record.message) is None:
            return super().formatMessage(record)
        safe = copy.copy(record)
        safe.message = _continued(record.message)
        return super().formatMessage(safe)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        """The traceback, each line after the first indented."""
        return _continued(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        """The stack, each line after the first indented."""
        return _continued(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the job fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JOB_FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Send taskkit's (and RQ's) logs to stderr in the chosen format.

    RQ's own per-job chatter stays at WARNING unless ``level`` is DEBUG: taskkit writes
    the one line per job that matters. The choice is also put in the environment, so a
    work horse spawned as a fresh interpreter can make the same (:func:`setup_inherited`).
    """
    os.environ[LEVEL_VARIABLE] = level.upper()
    os.environ[FORMAT_VARIABLE] = log_format
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    rq_level = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("rq", "rq.worker", "rq.scheduler", "rq.job", "rq.queue"):
        logger = logging.getLogger(name)
        logger.setLevel(rq_level)
        # RQ adds handlers of its own; ours (on the root) should be the only one.
        logger.handlers[:] = []
        logger.propagate = True


def setup_inherited() -> None:
    """Set up logging as the worker that started this process did (a spawned work horse)."""
    log_format = os.environ.get(FORMAT_VARIABLE)
    setup_logging(
        os.environ.get(LEVEL_VARIABLE) or "INFO", "json" if log_format == "json" else "text"
    )


def rq_logging_level(level: str) -> str:
    """The level to hand RQ's ``work()``, which otherwise resets its logger to INFO."""
    return "DEBUG" if level.upper() == "DEBUG" else "WARNING"


__all__ = [
    "FORMAT_VARIABLE",
    "JOB_FIELDS",
    "LEVEL_VARIABLE",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "escape_controls",
    "rq_logging_level",
    "setup_inherited",
    "setup_logging",
]
