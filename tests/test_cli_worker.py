"""``taskkit run-worker`` and ``taskkit enqueue`` as real subprocesses, with real signals."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue, Worker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import PickleSerializer
from worker_support import PICKLE_PROBE_JOBS, PROBE_JOBS, WorkerCli, wait_for

from taskkit import Registry

pytestmark = pytest.mark.slow

CONFIG = str(PROBE_JOBS)


def fetch(registry: Registry, job: Job) -> Job:
    return Job.fetch(job.id, connection=registry.connection, serializer=registry.serializer)


def status(registry: Registry, job: Job) -> JobStatus:
    return fetch(registry, job).get_status()


def job_lines(stderr: str, job: Job) -> list[str]:
    return [line for line in stderr.splitlines() if f"id={job.id}" in line]


# -- run-worker options --------------------------------------------------------------------


def test_an_unknown_queue_exits_2_naming_it(worker_cli: WorkerCli) -> None:
    done = worker_cli.run("run-worker", "-c", CONFIG, "--queues", "default,nope", "--burst")
    assert done.returncode == 2
    assert "nope not declared in" in done.stderr
    assert "(queues: critical, default, emails)" in done.stderr
    assert "Traceback" not in done.stderr


def test_queues_limits_the_worker_to_those_queues(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    critical = taskkit_registry.enqueue("critical_report")
    default = taskkit_registry.enqueue("report_none")
    done = worker_cli.run("run-worker", "-c", CONFIG, "--queues", "critical", "--burst")
    assert done.returncode == 0, done.stderr
    assert status(taskkit_registry, critical) == JobStatus.FINISHED
    assert status(taskkit_registry, default) == JobStatus.QUEUED


@pytest.mark.parametrize("worker_class", ["fork", "simple", "spawn"])
def test_each_worker_class_logs_one_line_per_job(
    worker_cli: WorkerCli, taskkit_registry: Registry, worker_class: str
) -> None:
    ok = taskkit_registry.enqueue("report_app")
    request = taskkit_registry.enqueue("report_request")
    failing = taskkit_registry.enqueue("fail_app", "no luck")
    # A relative -c: a spawned horse can only find jobs.yaml through $TASKKIT_CONFIG,
    # which the worker sets to the absolute path before it spawns anything.
    config = os.path.relpath(PROBE_JOBS, worker_cli.tmp_path)
    done = worker_cli.run("run-worker", "-c", config, "--burst", "--worker-class", worker_class)

    assert done.returncode == 0, done.stderr
    assert status(taskkit_registry, ok) == JobStatus.FINISHED
    assert status(taskkit_registry, failing) == JobStatus.FAILED
    number = r"\d+\.\dms"
    (ok_line,) = job_lines(done.stderr, ok)
    assert re.search(rf"INFO taskkit.worker: report_app queue=default id=\S+ {number} ok$", ok_line)
    (fail_line,) = job_lines(done.stderr, failing)
    assert re.search(
        rf"fail_app queue=default id=\S+ {number} failed: RuntimeError: no luck$", fail_line
    )
    seen = fetch(taskkit_registry, request).return_value()
    assert seen["url"] == "http://payments.example.com/receipts/7"
    worker_pid = worker_cli.factory_pids()[0]
    if worker_class == "simple":
        assert seen["pid"] == worker_pid
    else:
        assert seen["pid"] != worker_pid
    if worker_class == "spawn":
        # A spawned horse starts from nothing: it loads jobs.yaml and builds the app itself.
        assert len(worker_cli.factory_pids()) == 1 + 3
        assert seen["pid"] in worker_cli.factory_pids()
    else:
        assert worker_cli.factory_pids() == [worker_pid]


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_the_factory_runs_once_per_worker_process(
    worker_cli: WorkerCli, taskkit_registry: Registry, worker_class: str
) -> None:
    jobs = [taskkit_registry.enqueue("report_app") for _ in range(5)]
    done = worker_cli.run("run-worker", "-c", CONFIG, "--burst", "--worker-class", worker_class)
    assert done.returncode == 0, done.stderr
    reports = [fetch(taskkit_registry, job).return_value() for job in jobs]
    worker_pid = reports[0]["pid"] if worker_class == "simple" else reports[0]["ppid"]
    assert worker_cli.factory_pids() == [worker_pid]
    assert [outcome for _, outcome in worker_cli.teardowns()] == ["ok"] * 5


def test_processes_2_builds_the_app_once_before_forking_the_pool(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    markers = [worker_cli.tmp_path / f"mark-{n}" for n in range(6)]
    jobs = [taskkit_registry.enqueue("sleep_then_mark", 0.4, str(m)) for m in markers]
    process = worker_cli.start(
        "run-worker", "-c", CONFIG, "--burst", "--processes", "2", "--worker-class", "simple"
    )
    assert process.wait(timeout=60) == 0, worker_cli.stderr(process)

    assert all(status(taskkit_registry, job) == JobStatus.FINISHED for job in jobs)
    # The pool's parent (the taskkit process) built the app; its workers are forked from it.
    assert worker_cli.factory_pids() == [process.pid]
    workers = {fetch(taskkit_registry, job).worker_name for job in jobs}
    assert len(workers) == 2
    pids = {int(m.read_text()) for m in markers}
    assert len(pids) == 2 and process.pid not in pids


def test_max_jobs_stops_after_that_many(worker_cli: WorkerCli, taskkit_registry: Registry) -> None:
    jobs = [taskkit_registry.enqueue("noop") for _ in range(3)]
    done = worker_cli.run("run-worker", "-c", CONFIG, "--max-jobs", "2", "--worker-class", "simple")
    assert done.returncode == 0, done.stderr
    assert [status(taskkit_registry, job) for job in jobs] == [
        JobStatus.FINISHED,
        JobStatus.FINISHED,
        JobStatus.QUEUED,
    ]
    refused = worker_cli.run("run-worker", "-c", CONFIG, "--max-jobs", "2", "--processes", "2")
    assert refused.returncode == 2
    assert "--max-jobs works with --processes 1 only" in refused.stderr


def test_log_level(worker_cli: WorkerCli, taskkit_registry: Registry) -> None:
    ok = taskkit_registry.enqueue("noop")
    failing = taskkit_registry.enqueue("fail_app")
    quiet = worker_cli.run("run-worker", "-c", CONFIG, "--burst", "--log-level", "warning")
    assert job_lines(quiet.stderr, ok) == []
    assert len(job_lines(quiet.stderr, failing)) == 1
    assert "rq.worker" not in quiet.stderr.replace("ERROR rq.worker", "")

    taskkit_registry.enqueue("noop")
    loud = worker_cli.run("run-worker", "-c", CONFIG, "--burst", "--log-level", "DEBUG")
    assert "DEBUG rq.worker" in loud.stderr
    assert "INFO taskkit.worker: noop queue=default" in loud.stderr


def test_json_logs_carry_the_job_facts_as_fields(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    ok = taskkit_registry.enqueue("noop")
    failing = taskkit_registry.enqueue("fail_app", "no luck")
    done = worker_cli.run("run-worker", "-c", CONFIG, "--burst", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    lines = [r for r in records if r.get("logger") == "taskkit.worker" and "job_id" in r]
    by_id = {r["job_id"]: r for r in lines}
    assert by_id[ok.id]["job"] == "noop"
    assert by_id[ok.id]["queue"] == "default"
    assert by_id[ok.id]["outcome"] == "ok"
    assert isinstance(by_id[ok.id]["duration_ms"], float)
    assert (by_id[failing.id]["outcome"], by_id[failing.id]["error"]) == (
        "failed",
        "RuntimeError: no luck",
    )


# -- signals, delayed jobs and retries ---------------------------------------------------------


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_sigterm_lets_the_current_job_finish_then_exits_0(
    worker_cli: WorkerCli, taskkit_registry: Registry, worker_class: str
) -> None:
    marker = worker_cli.tmp_path / "finished"
    running = taskkit_registry.enqueue("sleep_then_mark", 1.5, str(marker))
    waiting = taskkit_registry.enqueue("noop")
    process = worker_cli.start("run-worker", "-c", CONFIG, "--worker-class", worker_class)
    wait_for(
        lambda: status(taskkit_registry, running) == JobStatus.STARTED, what="the job to start"
    )

    assert worker_cli.stop(process) == 0, worker_cli.stderr(process)
    assert marker.exists()
    assert status(taskkit_registry, running) == JobStatus.FINISHED
    assert status(taskkit_registry, waiting) == JobStatus.QUEUED, "no new job after SIGTERM"


def test_delayed_jobs_and_retry_intervals_run_with_a_plain_run_worker(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    """RQ needs its scheduler for delayed jobs and retries; run-worker always runs it."""
    delayed = taskkit_registry.enqueue_in(timedelta(seconds=1), "report_none")
    marker = worker_cli.tmp_path / "attempts"
    retried = taskkit_registry.enqueue("fail_then_mark", str(marker))  # retry: 2 x 1s
    process = worker_cli.start("run-worker", "-c", CONFIG)

    wait_for(lambda: status(taskkit_registry, delayed) == JobStatus.FINISHED, what="delayed job")
    wait_for(lambda: status(taskkit_registry, retried) == JobStatus.FINISHED, what="the retry")
    assert fetch(taskkit_registry, retried).return_value() == "attempt 2"
    assert marker.read_text() == "2"
    assert worker_cli.stop(process) == 0, worker_cli.stderr(process)
    stderr = worker_cli.stderr(process)
    assert len(job_lines(stderr, retried)) == 2  # the failure, then the success


def test_burst_runs_what_is_due_and_leaves_later_ones_scheduled(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    due = taskkit_registry.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "report_none")
    later = taskkit_registry.enqueue_in(timedelta(hours=1), "report_none")
    retried = taskkit_registry.enqueue("fail_then_mark", str(worker_cli.tmp_path / "n"))

    done = worker_cli.run("run-worker", "-c", CONFIG, "--burst")

    assert done.returncode == 0, done.stderr
    assert status(taskkit_registry, due) == JobStatus.FINISHED
    scheduled = ScheduledJobRegistry("default", connection=taskkit_registry.connection)
    assert set(scheduled.get_job_ids()) == {later.id, retried.id}, "the retry waits for a worker"


# -- serializer: pickle, end to end --------------------------------------------------------------


@pytest.mark.parametrize("taskkit_config_path", [PICKLE_PROBE_JOBS])
def test_pickle_jobs_run_with_a_forking_worker(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    moment = datetime(2025, 5, 6, tzinfo=UTC)
    job = taskkit_registry.enqueue("echo", moment, frozenset({1}))
    done = worker_cli.run("run-worker", "-c", str(PICKLE_PROBE_JOBS), "--burst")
    assert done.returncode == 0, done.stderr
    result = Job.fetch(job.id, connection=taskkit_registry.connection, serializer=PickleSerializer)
    assert result.return_value()["types"] == ["datetime", "frozenset"]


# -- taskkit enqueue -------------------------------------------------------------------------


def test_enqueue_prints_the_job_id_and_parses_json_values(
    worker_cli: WorkerCli, taskkit_registry: Registry
) -> None:
    done = worker_cli.run(
        "enqueue", "-c", CONFIG, "echo", "a=1", "b=[1, 2]", "c=hello", 'd={"x": null}', "e=true"
    )
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert "\n" not in job_id
    job = fetch(taskkit_registry, Job(job_id, connection=taskkit_registry.connection))
    assert job.kwargs == {"a": 1, "b": [1, 2], "c": "hello", "d": {"x": None}, "e": True}
    assert job.meta == {"taskkit_job": "echo"}
    assert Queue("default", connection=taskkit_registry.connection).job_ids == [job_id]

    later = worker_cli.run("enqueue", "-c", CONFIG, "--in", "5m", "report_none")
    scheduled = ScheduledJobRegistry("default", connection=taskkit_registry.connection)
    assert scheduled.get_job_ids() == [later.stdout.strip()]

    at = worker_cli.run("enqueue", "-c", CONFIG, "--at", "2030-01-01T09:00+01:00", "report_none")
    naive = worker_cli.run("enqueue", "-c", CONFIG, "--at", "2030-01-01T09:00", "report_none")
    assert scheduled.get_scheduled_time(at.stdout.strip()) == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert scheduled.get_scheduled_time(naive.stdout.strip()) == datetime(2030, 1, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--at", "tomorrow", "noop"], "'tomorrow' is not an ISO 8601 date and time"),
        (["--in", "soon", "noop"], "Invalid value for --in: 'soon' is not a duration"),
        (["--in", "5m", "--at", "2030-01-01T09:00", "noop"], "give --in or --at, not both"),
    ],
)
def test_enqueue_time_options_are_checked_as_usage_errors(
    worker_cli: WorkerCli, taskkit_registry: Registry, args: list[str], expected: str
) -> None:
    done = worker_cli.run("enqueue", "-c", CONFIG, *args)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert taskkit_registry.connection.dbsize() == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["send_payment_reciept", "user_id=1"], "did you mean 'send_payment_receipt'?"),
        (["send_payment_receipt", "user_id=1"], "missing a required argument: 'payment_id'"),
        (["send_payment_receipt", "user_id=1", "payment_id=2", "x=3"], "unexpected keyword"),
        (
            ["send_payment_receipt", "user_id=1", "paymentid=2"],
            "unexpected keyword 'paymentid' (the callable is ",
        ),
        (["send_payment_receipt", "user_id=1", "paymentid=2"], "; did you mean 'payment_id'?"),
    ],
)
def test_enqueue_errors_are_one_line_and_exit_1(
    worker_cli: WorkerCli, taskkit_registry: Registry, args: list[str], expected: str
) -> None:
    done = worker_cli.run("enqueue", "-c", CONFIG, *args)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert expected in line
    assert taskkit_registry.connection.dbsize() == 0


def test_enqueue_with_redis_down_is_one_line_without_the_password(worker_cli: WorkerCli) -> None:
    worker_cli.env["REDIS_URL"] = "redis://:s3cret-pw@127.0.0.1:1/0"
    done = worker_cli.run("enqueue", "-c", CONFIG, "noop")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert "is not reachable" in line
    assert "s3cret-pw" not in done.stderr


def test_a_sigterm_while_idle_exits_0(worker_cli: WorkerCli, taskkit_registry: Registry) -> None:
    process = worker_cli.start("run-worker", "-c", CONFIG, "--worker-class", "simple")
    connection = taskkit_registry.connection
    # Idle means listening: RQ registers a worker before it installs its signal handlers.
    wait_for(
        lambda: [w.get_state() for w in Worker.all(connection=connection)] == ["idle"],
        what="the worker to wait for jobs",
    )
    assert worker_cli.stop(process) == 0, worker_cli.stderr(process)
    assert Worker.count(connection=connection) == 0
