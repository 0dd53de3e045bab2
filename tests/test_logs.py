"""Logs of the long-running commands: one line per job, as text or as JSON lines."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
from typing import Any

import pytest
from rq.serializers import JSONSerializer
from worker_support import WorkerCli

from taskkit.logs import JsonFormatter
from taskkit.registry import Registry

pytestmark = pytest.mark.slow


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON; fails the test on a line that is not."""
    records = []
    for line in stderr.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n--- all of stderr:\n{stderr}")
    return records


def job_record(records: list[dict[str, Any]], job_id: str) -> dict[str, Any]:
    (record,) = [r for r in records if r["logger"] == "taskkit.worker" and job_id in r["message"]]
    return record


@pytest.mark.parametrize("worker_class", ["fork", "spawn"])
def test_json_logs_have_one_line_per_job_with_its_fields(
    ops: Registry, worker_cli: WorkerCli, worker_class: str
) -> None:
    ok = ops.enqueue("ping", value=1)
    failing = ops.enqueue("needs_flag", flag="missing")
    done = worker_cli.run(
        "run-worker", "-c", str(ops.path), "--burst", "--log-format", "json",
        "--worker-class", worker_class,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    records = json_lines(done.stderr)
    good, bad = job_record(records, ok.id), job_record(records, failing.id)
    assert {k: good.get(k) for k in ("level", "job", "queue", "job_id", "outcome")} == {
        "level": "INFO", "job": "ping", "queue": "default", "job_id": ok.id, "outcome": "ok",
    }  # fmt: skip
    assert {k: bad.get(k) for k in ("level", "job", "queue", "job_id", "outcome")} == {
        "level": "WARNING", "job": "needs_flag", "queue": "default", "job_id": failing.id,
        "outcome": "failed",
    }  # fmt: skip
    assert bad["error"] == "RuntimeError: flag missing is not set"
    for record in (good, bad):
        assert isinstance(record["duration_ms"], int | float)
        assert record["duration_ms"] >= 0
        assert record["time"].endswith("+00:00")


def test_text_logs_have_one_readable_line_per_job(ops: Registry, worker_cli: WorkerCli) -> None:
    job = ops.enqueue("ping")
    done = worker_cli.run("run-worker", "-c", str(ops.path), "--burst", "--log-format", "text")

    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if job.id in line]
    assert re.search(rf"INFO taskkit\.worker: ping queue=default id={job.id} \d+\.\dms ok$", line)


def test_the_scheduler_logs_json_too(ops: Registry, worker_cli: WorkerCli) -> None:
    done = worker_cli.run("run-scheduler", "-c", str(ops.path), "--burst", "--log-format", "json")

    assert done.returncode == 0, done.stderr
    records = json_lines(done.stderr)
    assert any(
        r["logger"] == "taskkit.scheduler" and r["message"].startswith("sync: create")
        for r in records
    ), records


def test_the_json_formatter_copies_job_fields_and_the_exception() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "taskkit.worker", logging.WARNING, __file__, 1, "%s failed", ("ping",), exc_info
    )
    for key, value in {"job": "ping", "queue": "q", "job_id": "i", "duration_ms": 1.5,
                       "outcome": "failed", "unrelated": "x"}.items():  # fmt: skip
        setattr(record, key, value)

    data = json.loads(JsonFormatter().format(record))

    assert data["message"] == "ping failed"
    assert data["level"] == "WARNING"
    assert data["logger"] == "taskkit.worker"
    assert (data["job"], data["queue"], data["job_id"]) == ("ping", "q", "i")
    assert (data["duration_ms"], data["outcome"]) == (1.5, "failed")
    assert "unrelated" not in data
    assert data["exception"].endswith("ValueError: bad")


FORGED = "\nFAKE INFO taskkit.worker: all is well"


def test_values_from_redis_or_arguments_cannot_write_a_line_of_their_own(
    ops: Registry, worker_cli: WorkerCli
) -> None:
    """A forged entry's origin and a job argument carried a newline into the text log."""
    from rq import Queue

    queue = Queue("default", connection=ops.connection, serializer=JSONSerializer)
    forged = queue.enqueue("builtins.eval", "1")
    ops.connection.hset(forged.key, "origin", f"default{FORGED}")
    failing = ops.enqueue("needs_flag", flag=f"x{FORGED}")

    done = worker_cli.run("run-worker", "-c", str(ops.path), "--burst", "--log-format", "text")

    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("FAKE")], done.stderr
    lines = done.stderr.splitlines()
    (line,) = [line for line in lines if f"taskkit.worker: refused job {forged.id}" in line]
    assert "from queue default\\nFAKE INFO" in line
    (line,) = [line for line in lines if f"needs_flag queue=default id={failing.id}" in line]
    assert line.endswith(
        "failed: RuntimeError: flag x\\nFAKE INFO taskkit.worker: all is well is not set"
    )


def test_the_text_format_escapes_control_characters_and_indents_tracebacks() -> None:
    from taskkit.logs import TextFormatter

    try:
        raise ValueError(f"bad{FORGED}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "rq.worker", logging.ERROR, __file__, 1, "job: %s\x1b[2J", (FORGED,), exc_info
    )

    lines = TextFormatter().format(record).splitlines()

    assert lines[0].endswith("ERROR rq.worker: job: ")
    assert lines[1] == "    FAKE INFO taskkit.worker: all is well\\x1b[2J"
    tail = [line for line in lines[2:] if line != "Traceback (most recent call last):"]
    assert all(line.startswith("    ") for line in tail), lines
    assert not any(line.startswith("FAKE") for line in lines)


def test_a_stopping_worker_says_what_it_waits_for(ops: Registry, worker_cli: WorkerCli) -> None:
    from worker_support import wait_for

    job = ops.enqueue("block_until", key="release")
    worker = worker_cli.start("run-worker", "-c", str(ops.path))
    wait_for(lambda: ops.connection.exists("release:running"), what="the job to start")

    worker.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping after the current job" in worker_cli.stderr(worker), what="the line")
    assert worker.poll() is None, "it waits for the job"
    ops.connection.set("release", 1)

    assert worker.wait(timeout=90) == 0
    stderr = worker_cli.stderr(worker)
    assert f"INFO taskkit.worker: SIGTERM: stopping after the current job ({job.id})" in stderr
    assert re.search(r"INFO taskkit\.worker: worker \w+ stopped$", stderr, re.MULTILINE)
