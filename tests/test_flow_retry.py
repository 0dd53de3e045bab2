"""jobs.yaml's retry policy: backoff, retry.on and discard_on, with real workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_support import FLOW_JOBS, events
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from taskkit import Registry
from taskkit.errors import ConfigError
from taskkit.registry import load
from taskkit.testing import run_burst_worker

WORKER_CLASSES = ["simple", "fork"]


@pytest.fixture
def taskkit_config_path() -> Path:
    return FLOW_JOBS


def failure_text(registry: Registry, job: Job) -> str:
    fetched = Job.fetch(job.id, connection=registry.connection, serializer=registry.serializer)
    result = fetched.latest_result()
    assert result is not None
    return result.exc_string or ""


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_discard_on_fails_at_once_with_the_reason_recorded(
    taskkit_registry: Registry, worker_class: str
) -> None:
    job = taskkit_registry.enqueue("discard", kind="gone")

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed, run.retried) == (0, 1, 0), "retry: {max: 3} ignored"
    assert len(events(taskkit_registry.connection, "raise_error")) == 1
    assert job.get_status() == JobStatus.FAILED
    text = failure_text(taskkit_registry, job)
    assert text.startswith("discarded: flowjobs:GoneError is in discard_on, so it is not retried\n")
    assert "GoneError: gone for 0" in text


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_other_exceptions_are_retried_despite_discard_on(
    taskkit_registry: Registry, worker_class: str
) -> None:
    taskkit_registry.enqueue("discard", kind="transient")
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert (run.finished, run.failed, run.retried) == (0, 1, 3)


@pytest.mark.parametrize(("kind", "attempts"), [("transient", 3), ("value", 1)])
def test_retry_on_retries_only_the_exceptions_it_names(
    taskkit_registry: Registry, kind: str, attempts: int
) -> None:
    job = taskkit_registry.enqueue("only_transient", kind=kind)

    run = run_burst_worker(taskkit_registry)

    assert (run.failed, run.retried) == (1, attempts - 1)
    assert len(events(taskkit_registry.connection, "raise_error")) == attempts
    if kind == "value":
        assert failure_text(taskkit_registry, job).startswith(
            "not retried: builtins:ValueError is not in retry.on\n"
        )


def test_backoff_becomes_rqs_retry_intervals(taskkit_registry: Registry) -> None:
    job = taskkit_registry.enqueue("backoff", kind="transient")
    assert job.retries_left == 4
    assert job.retry_intervals == [100, 300, 600, 600], "base 100 s, factor 3, max 10 min"


def test_jitter_draws_each_retry_wait_between_half_and_all_of_it(
    taskkit_registry: Registry,
) -> None:
    jobs = [taskkit_registry.enqueue("jittered", kind="transient") for _ in range(4)]

    run_burst_worker(taskkit_registry)

    scheduled = ScheduledJobRegistry("default", connection=taskkit_registry.connection)
    waits = []
    for job in jobs:
        job.refresh()
        assert job.get_status() == JobStatus.SCHEDULED
        at = scheduled.get_scheduled_time(job)
        assert job.ended_at is not None
        waits.append((at - job.ended_at.replace(microsecond=0)).total_seconds())
    assert all(49 <= wait <= 101 for wait in waits), waits
    assert len(set(waits)) > 1, f"jitter: the same wait for every job: {waits}"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            'discard_on: ["flowjobs:Missing"]',
            "'flowjobs:Missing' is nothing, not an exception class",
        ),
        (
            'discard_on: ["flowjobs:NOT_AN_EXCEPTION"]',
            "'flowjobs:NOT_AN_EXCEPTION' is a int, not an exception class",
        ),
        ('retry: {max: 1, on: ["nosuchmodule:Error"]}', "module 'nosuchmodule'"),
        ("retry: {max: 1, intervals: [1s], backoff: {base: 1s}}", "keep one of them"),
        ('unique: {key: "x:{acount_id}"}', "uses {acount_id}, which the job does not take"),
        ('unique: {key: "x:{0}"}', "uses a positional field {0}"),
        ('unique: {key: "x:{"}', "is not a str.format template"),
    ],
)
def test_flow_keys_are_checked_at_validate_time(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "version: 1\n"
        f"pythonpath: [{FLOW_JOBS.parent}]\n"
        "jobs:\n"
        "  j:\n"
        "    func: flowjobs:raise_error\n"
        f"    {yaml_text}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load(path, cached=False)
    message = str(raised.value)
    assert expected in message
    assert f"{path}:6:" in message, "file:line of the key"
