"""OpenTelemetry traces from enqueue to job (the optional ``taskkit[otel]`` extra).

With opentelemetry-api installed and a tracer provider configured (the SDK's, set by the
app), every enqueue (single, ``enqueue_many``, a schedule's tick, a retry) starts a
``send JOB`` producer span and carries its context in the job's meta (W3C trace context
under :data:`TRACE_KEY`); the worker runs the job inside a ``process JOB`` consumer span
that continues that trace, with the job's name, queue, id and attempt, and the exception
when it fails. A failed attempt that will be retried starts a ``send JOB`` producer span
(as a child of that attempt) whose context the job carries to the next attempt, which
links to it: the trace shows every attempt, in order.

Without OpenTelemetry the import is tried once, when this module is imported (before any
work horse is forked); every later check is one module-level ``None`` test. With it
installed but no tracer provider configured, nothing is recorded or written either.
The carried context rides on writes RQ makes anyway: no Redis round trip is added.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rq.job import Job

try:  # once per process; the worker imports this before it forks any horse
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: tracing costs nothing
    _trace = None  # type: ignore[assignment]
    _propagate = None  # type: ignore[assignment]

TRACE_KEY = "taskkit_trace"
"""Job meta: the producer span's context (``traceparent``, ``tracestate``)."""
ATTEMPT_KEY = "taskkit_attempt"
"""Job meta: the number of the last attempt and the context of its retry's producer span."""
_META_KEY = "taskkit_job"  # taskkit.registry.META_KEY (not imported: registry imports us)


def enabled() -> bool:
    """Whether OpenTelemetry is installed (checked once, at import)."""
    return _trace is not None


def get_tracer() -> Any:
    """taskkit's tracer, or None when OpenTelemetry is missing or not configured."""
    if _trace is None:
        return None
    if isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider):
        return None  # the API alone, no SDK set up: spans would be dropped anyway
    from taskkit import __version__

    return _trace.get_tracer("taskkit", __version__)


def _attributes(name: str, queue: str, job_id: str) -> dict[str, Any]:
    return {
        "messaging.system": "rq",
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        "taskkit.job": name,
    }


# -- the producer side ---------------------------------------------------------------------


def start_trace(job: Job, name: str, queue: str) -> None:
    """A producer span for ``job`` about to be enqueued; its context goes in the job's meta."""
    tracer = get_tracer()
    if tracer is None:
        return
    with tracer.start_as_current_span(
        f"send {name}", kind=_trace.SpanKind.PRODUCER, attributes=_attributes(name, queue, job.id)
    ):
        job.meta[TRACE_KEY] = _carrier()


@contextmanager
def batch_trace(count: int) -> Iterator[dict[str, str] | None]:
    """One producer span for an ``enqueue_many`` batch; yields the context every job carries."""
    tracer = get_tracer()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(
        "send batch",
        kind=_trace.SpanKind.PRODUCER,
        attributes={"messaging.system": "rq", "messaging.batch.message_count": count},
    ):
        yield _carrier()


def _carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return carrier


# -- the consumer side ---------------------------------------------------------------------


@contextmanager
def consumer_span(tracer: Any, job: Job) -> Iterator[None]:
    meta = job.meta if isinstance(job.meta, dict) else {}
    name = str(meta.get(_META_KEY) or job.func_name)
    parent = _propagate.extract(_dict(meta.get(TRACE_KEY)))
    previous = _dict(meta.get(ATTEMPT_KEY))
    attempt = _attempt(previous.get("attempt")) + 1
    links = []
    earlier = _trace.get_current_span(_propagate.extract(previous)).get_span_context()
    if earlier.is_valid:
        links.append(_trace.Link(earlier, {"taskkit.link": "previous attempt"}))
    attributes = _attributes(name, job.origin, job.id) | {"taskkit.attempt": attempt}
    with tracer.start_as_current_span(
        f"process {name}",
        context=parent,
        kind=_trace.SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
        record_exception=False,  # RQ catches the job's exception; recorded in handle_job_failure
        set_status_on_exception=False,
    ):
        meta[ATTEMPT_KEY] = {"attempt": attempt}
        yield


def record_failure(job: Job) -> None:
    span = _trace.get_current_span()
    if not span.is_recording():
        return  # a failure recorded outside a traced attempt (a killed horse, a stop)
    error = sys.exc_info()[1]
    if error is not None:
        span.record_exception(error)
    span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(error).__name__ if error else None))
    if job.should_retry and getattr(job, "_taskkit_refusal", None) is None:
        _start_retry(job)


def _start_retry(job: Job) -> None:
    """The retry's producer span, a child of the failed attempt; the next attempt links it."""
    tracer = get_tracer()
    meta = job.meta
    name = str(meta.get(_META_KEY) or job.func_name)
    with tracer.start_as_current_span(
        f"send {name}",
        kind=_trace.SpanKind.PRODUCER,
        attributes=_attributes(name, job.origin, job.id) | {"taskkit.retry": True},
    ):
        attempt = _dict(meta.get(ATTEMPT_KEY)).get("attempt", 1)
        meta[ATTEMPT_KEY] = {"attempt": attempt, **_carrier()}


def _dict(value: Any) -> dict[str, Any]:
    """A carrier read from a job's meta; anything malformed counts as none."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str | int)}


def _attempt(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 1_000_000 else 0


__all__ = [
    "ATTEMPT_KEY",
    "TRACE_KEY",
    "batch_trace",
    "consumer_span",
    "enabled",
    "get_tracer",
    "record_failure",
    "start_trace",
]
