"""The one log line per job: what ran, how long, and how it ended (or why it was refused)."""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from typing import Any

from rq.job import Job

from taskkit import logs
from taskkit.registry import DeclaredJob, Registry
from taskkit.worker import horses

log = logging.getLogger("taskkit.worker")

def _run_logged(
    registry: Registry, declared: DeclaredJob, job: Job, /, *args: Any, **kwargs: Any
) -> Any:
    """Run the job under its context policy and log one line: name, queue, time, outcome.

    The first three parameters are positional-only, so that a job may have parameters of
    any name (``job``, ``registry``) among the keyword arguments RQ passes on. The facts
    are also record attributes (see :mod:`taskkit.logs`), for JSON logs.
    """
    started = time.perf_counter()
    try:
        result = registry.call(declared, args, kwargs, partial(_log_teardown_error, declared, job))
    except BaseException as error:
        job._taskkit_no_retry = declared.flow.no_retry_reason(error)  # type: ignore[attr-defined]
        _log_failure(declared, job, (time.perf_counter() - started) * 1000, error)
        raise
    elapsed = (time.perf_counter() - started) * 1000
    outcome = horses.horse_outcome
    if outcome is not None and outcome.worker_pid != os.getpid():
        outcome.put(elapsed)  # a work horse: its worker writes the line (see _HorseOutcome)
    elif log.isEnabledFor(logging.INFO):
        _log_ok(declared, job, elapsed)
    return result


def _log_failure(declared: DeclaredJob, job: Job, elapsed: float, error: BaseException) -> None:
    """``... failed: Error: text``, or ``... failed, retry 1/3 in 10s: ...`` for an attempt
    that RQ will retry (that one is not a failure of the job, only of the attempt)."""
    failure = logs.escape_controls(f"{type(error).__name__}: {error}")
    no_retry = getattr(job, "_taskkit_no_retry", None)
    if no_retry is not None:
        failure += f" ({no_retry})"
    retry = _retry_note(declared, job)
    log.warning(
        "%s queue=%s id=%s %.1fms failed%s: %s",
        declared.name,
        declared.settings.queue,
        job.id,
        elapsed,
        f", {retry}" if retry else "",
        failure,
        extra=_facts(declared, job, elapsed, "retried" if retry else "failed", failure),
    )


def _retry_note(declared: DeclaredJob, job: Job) -> str | None:
    """``retry 1/3 in 10s`` if RQ will retry this attempt, else None."""
    if not job.should_retry:
        return None
    most = declared.settings.retry.max
    number = most - int(job.retries_left or 0) + 1
    interval = job.get_retry_interval()
    return f"retry {number}/{most} {f'in {interval}s' if interval else 'at once'}"


def _log_teardown_error(declared: DeclaredJob, job: Job, error: Exception) -> None:
    log.error(
        "%s queue=%s id=%s: a teardown handler raised %s after the job ended; the job keeps "
        "its outcome and is not retried for it",
        declared.name,
        declared.settings.queue,
        job.id,
        logs.escape_controls(f"{type(error).__name__}: {error}"),
        exc_info=error,
        extra={
            "job": declared.name,
            "queue": declared.settings.queue,
            "job_id": job.id,
            "outcome": "teardown_failed",
        },
    )


def _log_ok(declared: DeclaredJob, job: Job, elapsed: float) -> None:
    log.info(
        "%s queue=%s id=%s %.1fms ok",
        declared.name,
        declared.settings.queue,
        job.id,
        elapsed,
        extra=_facts(declared, job, elapsed, "ok"),
    )


def _facts(
    declared: DeclaredJob, job: Job, elapsed: float, outcome: str, error: str | None = None
) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "job": declared.name,
        "queue": declared.settings.queue,
        "job_id": job.id,
        "duration_ms": round(elapsed, 1),
        "outcome": outcome,
    }
    if error is not None:
        facts["error"] = error
    return facts


def _log_refusal(job: Job, reason: str) -> None:
    log.error(
        "refused job %s from queue %s: %s",
        job.id,
        logs.escape_controls(job.origin),
        logs.escape_controls(reason),
        extra={"queue": job.origin, "job_id": job.id, "outcome": "refused", "error": reason},
    )
