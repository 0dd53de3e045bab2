"""Garbage in Redis: each bad entry fails alone with a reason (or is skipped when there is
no job to fail), and the worker stays up and runs the next job.

Forged entries naming undeclared callables, a pickled entry on a JSON worker (simple
worker), a bad ``created_at`` and callbacks are in tests/test_execution.py; here are the
other kinds, for both worker classes, and garbage that used to stop maintenance.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fault_support import failure_text, fetch
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer
from worker_support import PICKLE_PROBE_JOBS, WorkerCli, wait_for

from taskkit import Registry
from taskkit.testing import run_burst_worker

WORKER_CLASSES = ["simple", "fork"]


def damage(registry: Registry, job: Job, **fields: bytes | str | None) -> None:
    """Set (or, for None, delete) fields of a job's hash, as a broken producer might."""
    conn = registry.connection
    for name, value in fields.items():
        if value is None:
            conn.hdel(job.key, name)
        else:
            conn.hset(job.key, name, value)


# Each case: what to do to an enqueued "noop" job, and what its failure must say.
MALFORMED: dict[str, tuple[dict[str, bytes | str | None], str]] = {
    "unparsable data": ({"data": b"\x00\xffnot json"}, "cannot be decoded with JSONSerializer"),
    "data of the wrong shape": ({"data": b'{"a": 1}'}, "cannot be decoded with JSONSerializer"),
    "no data": ({"data": None}, "its Redis hash is malformed (it has no 'data' field)"),
    "no origin": ({"origin": None}, "its Redis hash is malformed (it has no 'origin' field)"),
    "undecodable origin": ({"origin": b"\xff\xfe"}, "(field 'origin' cannot be read: Unicode"),
    "bad timeout": ({"timeout": "soon"}, "(field 'timeout' cannot be read: AssertionError)"),
    "bad status": ({"status": "bogus"}, "(field 'status' cannot be read: ValueError: 'bogus'"),
    "bad enqueued_at": ({"enqueued_at": "x"}, "(field 'enqueued_at' cannot be read: ValueError"),
}


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_entry_fails_alone_with_a_reason(
    taskkit_registry: Registry, worker_class: str, case: str
) -> None:
    fields, reason = MALFORMED[case]
    broken = taskkit_registry.enqueue("noop")
    damage(taskkit_registry, broken, **fields)
    behind = taskkit_registry.enqueue("noop")

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (1, 1)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED
    assert reason in failure_text(taskkit_registry, broken)
    failed = FailedJobRegistry("default", connection=taskkit_registry.connection)
    assert failed.get_job_ids() == [broken.id], "failed under the queue it was found on"


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_an_entry_without_a_status_runs(taskkit_registry: Registry, worker_class: str) -> None:
    """RQ reads a hash without ``status`` as "created": producers before RQ 2.4.1 wrote none.
    The entry is otherwise whole and names a declared job, so it runs."""
    job = taskkit_registry.enqueue("noop")
    damage(taskkit_registry, job, status=None)
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert (run.finished, run.failed) == (1, 0)


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_pickled_entry_on_a_json_worker_is_failed(
    taskkit_registry: Registry, tmp_path: Path, worker_class: str
) -> None:
    marker = tmp_path / "ran"
    queue = Queue("default", connection=taskkit_registry.connection, serializer=PickleSerializer)
    pickled = queue.enqueue("builtins.eval", f"__import__('pathlib').Path({str(marker)!r}).touch()")
    behind = taskkit_registry.enqueue("noop")

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (1, 1)
    assert "cannot be decoded with JSONSerializer" in failure_text(taskkit_registry, pickled)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED
    assert not marker.exists()


def queue_garbage(registry: Registry, kind: str) -> str:
    """Push a job id whose key is missing or not a hash; return the id."""
    job_id = str(uuid.uuid4())
    if kind == "string key":
        registry.connection.set(f"rq:job:{job_id}", "not a hash")
    registry.connection.rpush("rq:queue:default", job_id)
    registry.connection.sadd("rq:queues", "rq:queue:default")
    return job_id


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
@pytest.mark.parametrize("kind", ["no hash", "string key"])
def test_a_queued_id_without_a_job_hash_is_skipped(
    taskkit_registry: Registry, worker_class: str, kind: str
) -> None:
    queue_garbage(taskkit_registry, kind)
    behind = taskkit_registry.enqueue("noop")
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert (run.finished, run.failed) == (1, 0)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED


def test_a_bare_rq_worker_quits_on_a_key_that_is_not_a_hash(taskkit_registry: Registry) -> None:
    """The control for the test above: RQ lets Redis's WRONGTYPE error stop the worker."""
    queue_garbage(taskkit_registry, "string key")
    behind = taskkit_registry.enqueue("noop")
    SimpleWorker(
        ["default"], connection=taskkit_registry.connection, serializer=JSONSerializer
    ).work(burst=True)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.QUEUED


# -- garbage in the started registry, where maintenance looks for abandoned jobs ---------------


def abandon(registry: Registry, job: Job) -> None:
    """Make ``job`` look like the job of a worker that died: started, heartbeat long gone."""
    conn = registry.connection
    conn.lrem("rq:queue:default", 0, job.id)
    conn.hset(job.key, "status", JobStatus.STARTED.value)
    conn.zadd(
        StartedJobRegistry("default", connection=conn).key, {f"{job.id}:x1": time.time() - 60}
    )


def garbage_in_started_registry(registry: Registry) -> tuple[Job, Job]:
    """An abandoned job with an unreadable hash, then a real abandoned job."""
    garbage, real = registry.enqueue("noop"), registry.enqueue("noop")
    abandon(registry, garbage)
    abandon(registry, real)
    damage(registry, garbage, created_at="not a date")
    return garbage, real


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_garbage_in_the_started_registry_does_not_stop_recovery(
    taskkit_registry: Registry, worker_class: str
) -> None:
    _, real = garbage_in_started_registry(taskkit_registry)
    behind = taskkit_registry.enqueue("noop")

    run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED
    assert fetch(taskkit_registry, real).get_status() == JobStatus.FAILED
    assert "AbandonedJobError" in failure_text(taskkit_registry, real)
    started = StartedJobRegistry("default", connection=taskkit_registry.connection)
    assert started.get_job_ids(cleanup=False) == []
    lock = taskkit_registry.connection.exists("rq:clean_registries:default")
    assert not lock, "the maintenance lock was released"


def test_a_bare_rq_worker_stops_on_garbage_in_the_started_registry(
    taskkit_registry: Registry,
) -> None:
    """The control: RQ's maintenance raises on the unreadable hash, the worker quits, the
    real abandoned job is never recovered, and the lock stays for 15 minutes."""
    _, real = garbage_in_started_registry(taskkit_registry)
    behind = taskkit_registry.enqueue("noop")
    SimpleWorker(
        ["default"], connection=taskkit_registry.connection, serializer=JSONSerializer
    ).work(burst=True)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.QUEUED
    assert fetch(taskkit_registry, real).get_status() == JobStatus.STARTED
    assert taskkit_registry.connection.ttl("rq:clean_registries:default") > 800


def test_json_with_values_of_the_wrong_kind_fails_alone(taskkit_registry: Registry) -> None:
    """Data that decodes, but whose keyword arguments are a list."""
    job = taskkit_registry.enqueue("noop")
    payload = json.dumps(["faultjobs.noop", None, [], [1, 2]]).encode()  # kwargs not a dict
    damage(taskkit_registry, job, data=payload)
    behind = taskkit_registry.enqueue("noop")
    run = run_burst_worker(taskkit_registry)
    assert (run.finished, run.failed) == (1, 1)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED
    assert "TypeError" in failure_text(taskkit_registry, job)


class _Touch:
    """Pickles to "call Path.touch(path)": unpickling it creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("taskkit_config_path", [PICKLE_PROBE_JOBS])
def test_a_forged_pickle_entry_runs_code_on_a_pickle_worker(
    taskkit_registry: Registry, tmp_path: Path
) -> None:
    """The caveat of ``serializer: pickle`` (reliability.md): whoever can write to Redis can run
    code in the worker, because unpickling the entry runs it, before any check. The
    entry even names a declared job. With JSON (the default) the same entry is refused
    (test_a_pickled_entry_on_a_json_worker_is_failed)."""
    marker = tmp_path / "unpickled"
    queue = Queue("default", connection=taskkit_registry.connection, serializer=PickleSerializer)
    queue.enqueue("probes.echo", _Touch(marker), meta={"taskkit_job": "echo"})
    run_burst_worker(taskkit_registry)
    assert marker.exists()


# -- queue entries that are no job id (RQ raised ValueError out of the dequeue) ---------------

NOT_JOB_IDS = {
    "a dot": b"bad.id",
    "a space": b"bad id",
    "a newline": b"bad\nFAKE INFO taskkit.worker: forged",
    "not UTF-8": b"\xff\xfe",
    "empty": b"",
    "a colon": b"job:execution",
}


@pytest.mark.parametrize("queues", [None, ["default"]], ids=["LPOP", "LMOVE"])
@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
@pytest.mark.parametrize("entry", list(NOT_JOB_IDS))
def test_a_queue_entry_that_is_no_job_id_is_removed_and_the_worker_goes_on(
    taskkit_registry: Registry,
    worker_class: str,
    queues: list[str] | None,
    entry: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Several queues are read with LPOP, one with LMOVE through an intermediate list."""
    conn = taskkit_registry.connection
    conn.rpush("rq:queue:default", NOT_JOB_IDS[entry])
    behind = taskkit_registry.enqueue("noop")

    run = run_burst_worker(taskkit_registry, queues, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (1, 0)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED
    assert conn.llen("rq:queue:default") == conn.llen("rq:queue:default:intermediate") == 0
    (line,) = [r.getMessage() for r in caplog.records if "removed the entry" in r.getMessage()]
    assert "\n" not in line and "from rq:queue:default: it is not a job id" in line


def test_garbage_in_the_started_registry_and_the_intermediate_list_is_removed(
    taskkit_registry: Registry,
) -> None:
    """RQ's cleaning raised on these at every pass: abandoned jobs were never recovered."""
    conn = taskkit_registry.connection
    real = taskkit_registry.enqueue("noop")
    abandon(taskkit_registry, real)
    started = StartedJobRegistry("default", connection=conn).key
    conn.zadd(started, {b"bad.id:x": time.time() - 60, b"\xff\xfe:x": time.time() - 60})
    conn.rpush("rq:queue:default:intermediate", b"bad.id", b"\xff\xfe")

    run_burst_worker(taskkit_registry)

    assert fetch(taskkit_registry, real).get_status() == JobStatus.FAILED
    assert "AbandonedJobError" in failure_text(taskkit_registry, real)
    assert conn.zcard(started) == 0
    assert conn.llen("rq:queue:default:intermediate") == 0


def test_a_worker_that_quits_on_an_unexpected_error_says_so(taskkit_registry: Registry) -> None:
    """RQ's loop logs the error and returns as if asked to stop (exit status 0)."""
    from taskkit.errors import WorkerCrashedError
    from taskkit.testing import _worker_process_state
    from taskkit.worker import TaskkitQueue, make_worker, prepare_process

    class Broken(TaskkitQueue):
        @classmethod
        def dequeue_any(cls, *args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

    with _worker_process_state(taskkit_registry, None):
        prepare_process(taskkit_registry, fork_hygiene=False)
        worker = make_worker(taskkit_registry, worker_class="simple", queue_class=Broken)
        worker.work(burst=True, logging_level="WARNING")
    assert isinstance(worker.crashed, RuntimeError)  # type: ignore[attr-defined]
    message = str(WorkerCrashedError(worker.crashed))  # type: ignore[attr-defined]
    assert message.startswith("the worker quit on an unexpected error (RuntimeError: a bug)")


SCHEDULED_GARBAGE = {"not a job id": b"bad.id", "not UTF-8": b"\xff\xfe", "a colon": b"a:b"}


@pytest.mark.parametrize("damaged", ["bad status", "unparsable data"])
@pytest.mark.parametrize("entry", list(SCHEDULED_GARBAGE))
def test_garbage_among_due_delayed_jobs_is_removed_and_the_rest_run(
    taskkit_registry: Registry, entry: str, damaged: str, caplog: pytest.LogCaptureFixture
) -> None:
    """RQ's scheduler raised on such entries at every pass: no delayed job or retry of
    that queue was ever enqueued again (and a burst worker, which runs it inline, quit).
    A job whose hash cannot be read at all ("bad status") is failed with the reason."""
    conn = taskkit_registry.connection
    fields, reason = MALFORMED[damaged]
    delayed = taskkit_registry.enqueue_in(timedelta(seconds=0), "noop")
    broken = taskkit_registry.enqueue_in(timedelta(seconds=0), "noop")
    damage(taskkit_registry, broken, **fields)
    scheduled = ScheduledJobRegistry("default", connection=conn).key
    conn.zadd(scheduled, {SCHEDULED_GARBAGE[entry]: time.time() - 60})

    run = run_burst_worker(taskkit_registry)

    assert (run.finished, run.failed) == (1, 1)
    assert fetch(taskkit_registry, delayed).get_status() == JobStatus.FINISHED
    assert reason in failure_text(taskkit_registry, broken)
    assert conn.zcard(scheduled) == 0
    (line,) = [r.getMessage() for r in caplog.records if "removed the entry" in r.getMessage()]
    assert f"from {scheduled}: it is not a job id" in line and "\n" not in line


def test_a_running_worker_enqueues_delayed_jobs_behind_garbage(
    taskkit_registry: Registry, worker_cli: WorkerCli, taskkit_config_path: Path
) -> None:
    """The same in RQ's scheduler process of a running worker, which died at every pass."""
    conn = taskkit_registry.connection
    scheduled = ScheduledJobRegistry("default", connection=conn).key
    conn.zadd(scheduled, {b"\xff\xfe": time.time() - 60})
    process = worker_cli.start("run-worker", "-c", str(taskkit_config_path))
    delayed = taskkit_registry.enqueue_in(timedelta(seconds=1), "noop")

    wait_for(
        lambda: fetch(taskkit_registry, delayed).get_status() == JobStatus.FINISHED,
        what="the delayed job to run",
    )
    assert conn.zcard(scheduled) == 0
    assert worker_cli.stop(process) == 0
    assert "removed the entry '\\\\xff\\\\xfe' from rq:scheduled:default" in worker_cli.stderr(
        process
    )
