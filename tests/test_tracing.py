"""Traces from enqueue to job, with the OpenTelemetry SDK's in-memory exporter.

The worker is a real RQ simple worker in this process (burst), so its spans reach the
same exporter as the producer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from ops_support import write_jobs_yaml

from taskkit.registry import Registry, load
from taskkit.testing import run_burst_worker
from taskkit.tracing import TRACE_KEY

EXTRA_JOBS = '  retry_once: {func: "opsjobs:fail_first_time", retry: {max: 1}}\n'


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """A tracer provider for this test only, exporting to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    # The API lets a process set its provider once; tests after this one must see none.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def registry(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    return load(write_jobs_yaml(tmp_path, extra_jobs=EXTRA_JOBS), cached=False)


def named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def test_the_job_continues_the_trace_its_enqueue_started(
    spans: InMemorySpanExporter, registry: Registry
) -> None:
    job = registry.enqueue("ping", value="traced")
    run_burst_worker(registry)

    finished = spans.get_finished_spans()
    (send,) = named(finished, "send ping")
    (process,) = named(finished, "process ping")
    assert send.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
    assert process.context.trace_id == send.context.trace_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.attributes is not None
    assert dict(process.attributes) == {
        "messaging.system": "rq",
        "messaging.destination.name": "default",
        "messaging.message.id": job.id,
        "taskkit.job": "ping",
        "taskkit.attempt": 1,
    }
    assert process.status.status_code != StatusCode.ERROR


def test_a_retried_job_shows_each_attempt_in_one_trace(
    spans: InMemorySpanExporter, registry: Registry
) -> None:
    registry.enqueue("retry_once", marker="retry-marker")
    run_burst_worker(registry)

    finished = spans.get_finished_spans()
    first_send, retry_send = sorted(named(finished, "send retry_once"), key=lambda s: s.start_time)
    attempts = sorted(named(finished, "process retry_once"), key=lambda s: s.start_time)
    assert [a.attributes["taskkit.attempt"] for a in attempts] == [1, 2]  # type: ignore[index]
    first, second = attempts
    assert {s.context.trace_id for s in (first_send, retry_send, first, second)} == {
        first_send.context.trace_id
    }
    # The first attempt failed with its exception recorded; its retry is sent from it.
    assert first.status.status_code == StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert first.events[0].attributes["exception.message"] == "first attempt fails"  # type: ignore[index]
    assert retry_send.parent is not None and retry_send.parent.span_id == first.context.span_id
    # The second attempt continues the enqueue's trace and links to the retry.
    assert second.parent is not None and second.parent.span_id == first_send.context.span_id
    assert [link.context.span_id for link in second.links] == [retry_send.context.span_id]
    assert second.status.status_code != StatusCode.ERROR


def test_enqueue_many_sends_one_span_for_the_batch(
    spans: InMemorySpanExporter, registry: Registry
) -> None:
    registry.enqueue_many([("ping", (), {"value": n}) for n in range(3)])
    run_burst_worker(registry)

    finished = spans.get_finished_spans()
    (batch,) = named(finished, "send batch")
    processed = named(finished, "process ping")
    assert len(processed) == 3
    assert {p.parent.span_id for p in processed if p.parent} == {batch.context.span_id}


def test_without_a_configured_provider_nothing_is_carried(registry: Registry) -> None:
    job = registry.enqueue("ping")
    (many,) = registry.enqueue_many([("ping", (), {})])
    fetched = [registry.fetch(j.id) for j in (job, many)]
    assert all(f is not None and TRACE_KEY not in f.meta for f in fetched)
