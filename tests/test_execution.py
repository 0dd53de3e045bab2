"""The worker side, in process: only declared jobs run, each in its context policy.

Workers here are real RQ workers (``taskkit.testing.run_burst_worker``) on the test
Redis; ``fork`` ones fork this process per job. The subprocess CLI is in
test_cli_worker.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rq import Callback, Queue, Retry, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer
from worker_support import PICKLE_PROBE_JOBS, PROBE_JOBS

from taskkit import Registry
from taskkit.context import install_fork_hygiene
from taskkit.testing import run_burst_worker
from taskkit.worker import run as worker_run

WORKER_CLASSES = ["simple", "fork"]


def plain_queue(registry: Registry, name: str = "default") -> Queue:
    """A bare RQ queue, as any producer (or an attacker with Redis access) would use."""
    return Queue(name, connection=registry.connection, serializer=registry.serializer)


def fetch(registry: Registry, job: Job) -> Job:
    return Job.fetch(job.id, connection=registry.connection, serializer=registry.serializer)


def failure_text(registry: Registry, job: Job) -> str:
    result = fetch(registry, job).latest_result()
    assert result is not None, f"job {job.id} has no result"
    return result.exc_string or ""


def forged_entries(registry: Registry, tmp_path: Path) -> tuple[list[Job], list[Path]]:
    """Entries naming callables jobs.yaml does not declare; each would leave a marker."""
    markers = [tmp_path / "eval-ran", tmp_path / "system-ran"]
    queue = plain_queue(registry)
    jobs = [
        queue.enqueue("builtins.eval", f"__import__('pathlib').Path({str(markers[0])!r}).touch()"),
        queue.enqueue("os.system", f"touch {markers[1]}"),
    ]
    return jobs, markers


# -- only declared jobs run -------------------------------------------------------------------


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
@pytest.mark.parametrize(
    "taskkit_config_path", [PROBE_JOBS, PICKLE_PROBE_JOBS], ids=["json", "pickle"]
)
def test_undeclared_entries_are_failed_and_the_worker_goes_on(
    taskkit_registry: Registry, tmp_path: Path, worker_class: str
) -> None:
    forged, markers = forged_entries(taskkit_registry, tmp_path)
    valid = taskkit_registry.enqueue("report_none")

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (1, 2)
    assert fetch(taskkit_registry, valid).get_status() == JobStatus.FINISHED
    failed = FailedJobRegistry("default", connection=taskkit_registry.connection)
    assert set(failed.get_job_ids()) == {job.id for job in forged}
    for job, name in zip(forged, ("builtins.eval", "os.system"), strict=True):
        text = failure_text(taskkit_registry, job)
        assert "UndeclaredJobError" in text
        assert f"it names {name!r}, which {PROBE_JOBS.parent}" in text
        assert "nothing was run" in text
    assert not any(marker.exists() for marker in markers), "an undeclared callable ran"


def test_a_bare_rq_worker_runs_the_same_entry(taskkit_registry: Registry, tmp_path: Path) -> None:
    """The control for the test above (docs/design.md, what taskkit changes in RQ): without
    taskkit, eval runs."""
    forged, markers = forged_entries(taskkit_registry, tmp_path)
    SimpleWorker(
        ["default"], connection=taskkit_registry.connection, serializer=JSONSerializer
    ).work(burst=True)
    assert markers[0].exists()
    assert fetch(taskkit_registry, forged[0]).get_status() == JobStatus.FINISHED


def test_a_pickled_entry_on_a_json_worker_is_failed_with_the_reason(
    taskkit_registry: Registry, tmp_path: Path
) -> None:
    queue = Queue("default", connection=taskkit_registry.connection, serializer=PickleSerializer)
    pickled = queue.enqueue(
        "builtins.eval", f"__import__('pathlib').Path({str(tmp_path / 'x')!r}).touch()"
    )
    valid = taskkit_registry.enqueue("report_none")

    assert run_burst_worker(taskkit_registry).finished == 1

    text = failure_text(taskkit_registry, pickled)
    assert "cannot be decoded with JSONSerializer" in text
    assert "another serializer" in text
    assert not (tmp_path / "x").exists()
    assert fetch(taskkit_registry, valid).get_status() == JobStatus.FINISHED


def test_callbacks_an_entry_names_are_never_imported(
    taskkit_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    monkeypatch.setenv("TASKKIT_IMPORT_MARKER", str(marker))
    queue = plain_queue(taskkit_registry)
    ok = queue.enqueue("probes.echo", 1, on_success=Callback("import_marker.callback"))
    failing = queue.enqueue(
        "probes.fail_in_context",
        on_failure=Callback("import_marker.callback"),
        meta={"taskkit_job": "fail_app"},
    )

    run = run_burst_worker(taskkit_registry)

    assert (run.finished, run.failed) == (1, 1)
    assert fetch(taskkit_registry, ok).return_value()["args"] == ["1"]
    assert "RuntimeError: boom" in failure_text(taskkit_registry, failing)
    assert "import_marker" not in sys.modules
    assert not marker.exists()


def test_a_forged_entry_asking_for_retries_is_not_retried(taskkit_registry: Registry) -> None:
    forged = plain_queue(taskkit_registry).enqueue("builtins.eval", "1 + 1", retry=Retry(max=3))
    run = run_burst_worker(taskkit_registry)
    assert (run.finished, run.failed) == (0, 1)
    assert fetch(taskkit_registry, forged).get_status() == JobStatus.FAILED
    assert taskkit_registry.connection.zcard("rq:scheduled:default") == 0


@pytest.mark.parametrize(
    ("func_name", "meta", "reason"),
    [
        ("probes.echo", {}, None),  # a plain RQ producer naming a declared callable: runs
        ("probes.context_report", {}, "is declared by several jobs"),
        ("probes.echo", {"taskkit_job": "noop"}, "says it is job 'noop' but names 'probes.echo'"),
    ],
)
def test_entries_without_taskkit_metadata(
    taskkit_registry: Registry, func_name: str, meta: dict[str, str], reason: str | None
) -> None:
    job = plain_queue(taskkit_registry).enqueue(func_name, meta=meta)
    run_burst_worker(taskkit_registry)
    if reason is None:
        assert fetch(taskkit_registry, job).get_status() == JobStatus.FINISHED
    else:
        assert reason in failure_text(taskkit_registry, job)


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_malformed_job_hash_fails_alone(taskkit_registry: Registry, worker_class: str) -> None:
    broken = taskkit_registry.enqueue("report_none")
    taskkit_registry.connection.hset(broken.key, "created_at", "not a date")
    behind = taskkit_registry.enqueue("report_none")

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (1, 1)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.FINISHED
    assert "its Redis hash is malformed" in failure_text(taskkit_registry, broken)


def test_a_bare_rq_worker_quits_on_a_malformed_hash(taskkit_registry: Registry) -> None:
    """The control for the test above: a bare RQ worker quits on it."""
    broken = taskkit_registry.enqueue("report_none")
    taskkit_registry.connection.hset(broken.key, "created_at", "not a date")
    behind = taskkit_registry.enqueue("report_none")
    SimpleWorker(
        ["default"], connection=taskkit_registry.connection, serializer=JSONSerializer
    ).work(burst=True)
    assert fetch(taskkit_registry, behind).get_status() == JobStatus.QUEUED


# -- context policies ---------------------------------------------------------------------------


def teardowns() -> list[tuple[int, str]]:
    path = Path(os.environ["PAYMENTS_TEARDOWN_LOG"])
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [(int(pid), outcome) for pid, outcome in (line.split() for line in lines)]


def factory_calls() -> list[int]:
    path = Path(os.environ["PAYMENTS_FACTORY_LOG"])
    return [int(line) for line in path.read_text(encoding="utf-8").split()] if path.exists() else []


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_none_app_and_request_policies_in_one_worker(
    taskkit_registry: Registry, worker_class: str
) -> None:
    jobs = {
        name: taskkit_registry.enqueue(name)
        for name in ("report_none", "report_app", "report_request")
    }
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert run.finished == 3
    seen = {name: fetch(taskkit_registry, job).return_value() for name, job in jobs.items()}

    assert seen["report_none"]["app_context"] is False
    assert seen["report_none"]["request_context"] is False
    assert seen["report_app"]["app_context"] is True
    assert seen["report_app"]["request_context"] is False
    assert seen["report_app"]["app_name"] == "payments.app"
    assert seen["report_request"]["request_context"] is True
    assert seen["report_request"]["url"] == "http://payments.example.com/receipts/7"
    app = taskkit_registry.process_app.built
    assert app is not None
    if worker_class == "simple":
        assert {s["pid"] for s in seen.values()} == {os.getpid()}
        assert seen["report_app"]["app_id"] == id(app), "the worker's own app, not a new one"
    else:
        assert os.getpid() not in {s["pid"] for s in seen.values()}
        assert {s["ppid"] for s in seen.values()} == {os.getpid()}
    assert factory_calls() == [os.getpid()], "the app is built once, before any fork"


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_teardown_runs_after_every_job_success_or_failure(
    taskkit_registry: Registry, worker_class: str
) -> None:
    for name in ("report_app", "fail_app", "report_none", "report_request", "report_app"):
        taskkit_registry.enqueue(name)
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert (run.finished, run.failed) == (4, 1)
    outcomes = [outcome for _, outcome in teardowns()]
    assert outcomes == ["ok", "RuntimeError", "ok", "ok"], "one per app/request job, none for none"
    pids = [pid for pid, _ in teardowns()]
    if worker_class == "simple":
        assert set(pids) == {os.getpid()}
    else:
        assert len(set(pids)) == 4 and os.getpid() not in pids, "each in its own work horse"


# -- database pools across fork ----------------------------------------------------------------


def test_each_work_horse_opens_its_own_database_connection(taskkit_registry: Registry) -> None:
    jobs = [taskkit_registry.enqueue("database_report") for _ in range(3)]
    assert run_burst_worker(taskkit_registry, worker_class="fork").finished == 3
    for job in jobs:
        seen = fetch(taskkit_registry, job).return_value()
        assert seen["opened_by"] == seen["pid"] != os.getpid()
    app = taskkit_registry.process_app.built
    assert app is not None
    engine = app.extensions["sqlalchemy"]._app_engines[app][None]
    assert engine.pool.checkedout() == 0


def test_without_fork_hygiene_horses_would_share_the_parents_connection(
    taskkit_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: it fails if install_fork_hygiene does nothing."""
    monkeypatch.setattr(worker_run, "install_fork_hygiene", lambda app: None)
    job = taskkit_registry.enqueue("database_report")
    run_burst_worker(taskkit_registry, worker_class="fork")
    seen = fetch(taskkit_registry, job).return_value()
    assert seen["opened_by"] == os.getpid() != seen["pid"]


def test_a_child_forked_while_the_pools_are_empty_keeps_them(taskkit_registry: Registry) -> None:
    """The at-fork hook costs a horse nothing when there is nothing to drop."""
    app = taskkit_registry.process_app.get()
    install_fork_hygiene(app)
    engine = app.extensions["sqlalchemy"]._app_engines[app][None]
    before = id(engine.pool)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, str(id(engine.pool)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_child = int(pipe.read())
    os.waitpid(pid, 0)
    assert in_child == before


def test_a_child_forked_after_the_parent_used_the_database_opens_its_own(
    taskkit_registry: Registry,
) -> None:
    """The at-fork half of the hygiene: the parent may use its pool after preparing."""
    from sqlalchemy import text

    app = taskkit_registry.process_app.get()
    install_fork_hygiene(app)
    install_fork_hygiene(app)  # idempotent
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # the parent's pool now holds a connection
        db.session.remove()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report which process opened the connection it gets
        try:
            with app.app_context():
                connection = db.session.connection()
                opened_by = connection.connection.info.get("opened_by")
            os.write(write, json.dumps([os.getpid(), opened_by]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child, opened_by = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert opened_by == child != os.getpid()


# -- the worker process itself -----------------------------------------------------------------


def test_job_modules_are_imported_once_in_the_worker_before_any_fork(
    taskkit_registry: Registry,
) -> None:
    """RQ's fork worker: a module imported in each horse rebuilds what it builds at import."""
    jobs = [taskkit_registry.enqueue("report_app") for _ in range(2)]
    assert run_burst_worker(taskkit_registry, worker_class="fork").finished == 2
    reports = [fetch(taskkit_registry, job).return_value() for job in jobs]
    assert {report["module_imported_in"] for report in reports} == {os.getpid()}
    assert all(report["pid"] != os.getpid() for report in reports)


def test_rq_job_id_is_set_in_the_work_horse_only(taskkit_registry: Registry) -> None:
    """RQ set it in the worker too, leaking ~100 bytes per job in glibc's setenv."""
    os.environ.pop("RQ_JOB_ID", None)
    jobs = [taskkit_registry.enqueue("report_app") for _ in range(2)]
    assert run_burst_worker(taskkit_registry, worker_class="fork").finished == 2
    for job in jobs:
        assert fetch(taskkit_registry, job).return_value()["rq_job_id"] == job.id
    assert "RQ_JOB_ID" not in os.environ


def test_rq_suspend_holds_the_jobs_and_rq_resume_lets_them_run(taskkit_registry: Registry) -> None:
    """`rq suspend` is checked at most once a second (BEAT_EVERY), never skipped."""
    from rq.suspension import resume, suspend

    job = taskkit_registry.enqueue("report_app")
    suspend(taskkit_registry.connection)
    try:
        assert run_burst_worker(taskkit_registry, worker_class="simple").finished == 0
        assert fetch(taskkit_registry, job).get_status() == JobStatus.QUEUED
    finally:
        resume(taskkit_registry.connection)
    assert run_burst_worker(taskkit_registry, worker_class="simple").finished == 1


def test_a_stop_noticed_once_a_job_is_taken_lets_that_job_run_first(
    taskkit_registry: Registry,
) -> None:
    """A stop the worker only sees after it took a job off its queue (the signal came
    while RQ's maintenance swallowed it, or just then) must not drop that job: RQ's
    wait loop beats once more after taking it, and the remembered stop used to be
    raised there, leaving the job in no queue or registry."""
    from taskkit.testing import _worker_process_state
    from taskkit.worker import make_worker, prepare_process

    first, second = (taskkit_registry.enqueue("report_app") for _ in range(2))
    taking: list[Any] = []

    class StopOnceTaken(Queue):
        @classmethod
        def dequeue_any(cls, *args: Any, **kwargs: Any) -> Any:
            taken = super().dequeue_any(*args, **kwargs)
            if taken is not None:
                taking[0]._stop_requested = True  # as request_stop leaves it
            return taken

    with _worker_process_state(taskkit_registry, None):
        prepare_process(taskkit_registry, fork_hygiene=False)
        worker = make_worker(taskkit_registry, worker_class="simple", queue_class=StopOnceTaken)
        taking.append(worker)
        worker.work(burst=True, logging_level="WARNING")

    assert fetch(taskkit_registry, first).get_status() == JobStatus.FINISHED
    assert fetch(taskkit_registry, second).get_status() == JobStatus.QUEUED
    assert second.id in plain_queue(taskkit_registry).job_ids


# -- any parameter name; async jobs; teardown errors; retried attempts ------------------------


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_job_may_have_parameters_named_like_the_workers_own(
    taskkit_registry: Registry, worker_class: str
) -> None:
    """A job's ``job=``/``registry=`` keyword collided with the worker's own arguments."""
    job = taskkit_registry.enqueue("internals", job=1, registry=2, declared=3)
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert (run.finished, run.failed) == (1, 0)
    assert fetch(taskkit_registry, job).return_value() == [1, 2, 3]


@pytest.mark.parametrize("worker_class", [*WORKER_CLASSES, "spawn"])
def test_async_jobs_run_to_the_end_inside_their_context(
    taskkit_registry: Registry, worker_class: str
) -> None:
    """RQ awaited the coroutine after taskkit had popped the context; eager mode is in
    tests/test_eager.py."""
    app_job = taskkit_registry.enqueue("async_app", wait=0.01)
    request_job = taskkit_registry.enqueue("async_request")

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (2, 0)
    app_report = fetch(taskkit_registry, app_job).return_value()
    request_report = fetch(taskkit_registry, request_job).return_value()
    assert app_report["app_name"] == request_report["app_name"] == "payments.app"
    assert app_report["query"] == request_report["query"] == 42
    assert app_report["request_context"] is False
    assert request_report["url"] == "http://payments.example.com/receipts/7"
    assert [outcome for _, outcome in teardowns()] == ["ok", "ok"]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_teardown_error_leaves_the_job_finished_and_unretried(
    taskkit_registry: Registry, worker_class: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "runs"
    job = taskkit_registry.enqueue("teardown_breaks", marker=str(marker))

    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]

    assert (run.finished, run.failed) == (1, 0)
    assert fetch(taskkit_registry, job).get_status() == JobStatus.FINISHED
    assert fetch(taskkit_registry, job).return_value() == "done"
    assert marker.read_text() == "1", "run once: a teardown error is not the job's failure"
    if worker_class == "simple":  # a fork horse logs in its own process
        (line,) = [
            r.getMessage() for r in caplog.records if "teardown handler raised" in r.getMessage()
        ]
        assert line.startswith(f"teardown_breaks queue=default id={job.id}: ")
        assert "RuntimeError: teardown broke" in line


def test_a_retried_attempt_is_not_a_failure(
    taskkit_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    job = taskkit_registry.enqueue("always_fails", reason="no luck")

    run = run_burst_worker(taskkit_registry)  # retries at once: the burst runs all three

    assert (run.finished, run.failed, run.retried) == (0, 1, 2)
    assert fetch(taskkit_registry, job).get_status() == JobStatus.FAILED
    lines = [r.getMessage() for r in caplog.records if job.id in r.getMessage()]
    ours = [line for line in lines if line.startswith("always_fails ")]
    assert [line.split("ms ", 1)[1] for line in ours] == [
        "failed, retry 1/2 at once: ValueError: no luck",
        "failed, retry 2/2 at once: ValueError: no luck",
        "failed: ValueError: no luck",
    ]
    tracebacks = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "Traceback" in r.getMessage()
    ]
    assert len(tracebacks) == 1, "RQ's traceback for the final failure only"


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_retried_attempt_says_when_it_is_retried(
    taskkit_registry: Registry, worker_class: str, tmp_path: Path
) -> None:
    taskkit_registry.enqueue("fail_then_mark", marker=str(tmp_path / "m"))
    run = run_burst_worker(taskkit_registry, worker_class=worker_class)  # type: ignore[arg-type]
    assert (run.finished, run.failed, run.retried) == (0, 0, 1)
