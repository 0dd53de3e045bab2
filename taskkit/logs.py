"""Log set-up for the long-running commands: readable text, or one JSON object per line.

The per-job line carries its facts as record attributes (``job``, ``queue``, ``job_id``,
``duration_ms``, ``outcome``), so the JSON form has them as fields for log shippers.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
LEVEL_VARIABLE = "TASKKIT_LOG_LEVEL"
FORMAT_VARIABLE = "TASKKIT_LOG_FORMAT"
"""Carry ``--log-level`` / ``--log-format`` to processes a worker starts afresh (spawn)."""
JOB_FIELDS = ("job", "queue", "job_id", "duration_ms", "outcome", "error", "schedule", "tick")
"""Record attributes copied into JSON lines when present."""


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
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
    "rq_logging_level",
    "setup_inherited",
    "setup_logging",
]
