"""``taskkit status``: queue counts by state, live workers, schedules; table, JSON, watch."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from ops_support import cli_env, poll, write_jobs_yaml
from rq import Queue
from worker_support import WorkerCli

from taskkit import schedules
from taskkit.cli import cli
from taskkit.registry import META_KEY, Registry
from taskkit.testing import run_burst_worker


def status_json(config: Path) -> dict[str, Any]:
    done = CliRunner().invoke(cli, ["status", "-c", str(config), "--json"])
    assert done.exit_code == 0, done.output
    data: dict[str, Any] = json.loads(done.output)
    return data


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


def test_counts_each_queue_by_state(ops: Registry, ops_config: Path) -> None:
    ops.enqueue("ping")  # finishes
    ops.enqueue("needs_flag", flag="never-set")  # fails
    ops.enqueue("login", user="bob", password="pw")  # fails, on queue high
    run_burst_worker(ops)
    ops.enqueue("ping")  # stays queued
    ops.enqueue_in(timedelta(hours=1), "ping")  # scheduled
    blocker = ops.enqueue("ping")
    Queue("default", connection=ops.connection, serializer=ops.serializer).enqueue(
        "opsjobs.ping", depends_on=blocker, meta={META_KEY: "ping"}
    )  # deferred until blocker finishes

    queues = by_name(status_json(ops_config)["queues"])

    assert list(queues) == ["high", "default"]  # declared (priority) order
    counts = ("queued", "started", "scheduled", "deferred", "failed", "finished")
    assert {k: queues["default"][k] for k in counts} == {
        "queued": 2, "started": 0, "scheduled": 1, "deferred": 1, "failed": 1, "finished": 1,
    }  # fmt: skip
    assert {k: queues["high"][k] for k in counts} == dict.fromkeys(counts, 0) | {"failed": 1}


def test_the_table_shows_queues_workers_schedules_and_the_redis_url(
    ops: Registry, ops_config: Path
) -> None:
    ops.enqueue("ping")
    done = CliRunner().invoke(cli, ["status", "-c", str(ops_config)])

    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert "  name     queued  started  scheduled  deferred  failed  finished  state" in lines
    assert "  default  1       0        0          0         0       0         active" in lines
    assert "WORKERS (0)" in lines
    assert "SCHEDULES (schedulers running: 0)" in lines
    assert any(line.split()[:3] == ["hourly-ping", "ping", "not"] for line in lines)
    assert lines[-1] == f"redis: {ops.config.redis.url}"


@pytest.mark.slow
def test_a_busy_worker_shows_its_host_pid_and_current_job(
    ops: Registry, ops_config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    job = ops.enqueue("block_until", key="release")
    worker = worker_cli.start("run-worker", "-c", str(ops_config), "--burst")
    seen: dict[str, Any] = {}

    def busy_with_job() -> bool:
        done = worker_cli.run("status", "-c", str(ops_config), "--json")
        assert done.returncode == 0, done.stderr
        workers = json.loads(done.stdout)["workers"]
        seen.update(workers[0] if workers else {})
        return bool(workers) and workers[0]["state"] == "busy"

    try:
        poll(lambda: redis_conn.exists("release:running"), what="the job to start running")
        poll(busy_with_job, what="the worker to show as busy")
        # Still inside the job (it waits for "release"): what status shows right now.
        running = json.loads(worker_cli.run("status", "-c", str(ops_config), "--json").stdout)
        table = worker_cli.run("status", "-c", str(ops_config))
    finally:
        redis_conn.set("release", 1)
    assert worker.wait(timeout=30) == 0, worker_cli.stderr(worker)

    assert seen["pid"] == worker.pid
    assert seen["host"] == socket.gethostname()
    assert seen["current_job"] == job.id
    assert seen["current_job_name"] == "block_until"
    assert seen["queues"] == ["high", "default"]
    assert seen["last_heartbeat"]
    queues = by_name(running["queues"])
    assert (queues["default"]["started"], queues["default"]["queued"]) == (1, 0)
    assert queues["high"]["started"] == 0
    assert table.returncode == 0, table.stderr
    assert "WORKERS (1)" in table.stdout
    (row,) = [line.split() for line in table.stdout.splitlines() if job.id in line]
    assert row[:6] == [socket.gethostname(), str(worker.pid), "busy", "high,default",
                       "block_until", job.id]  # fmt: skip
    assert status_json(ops_config)["workers"] == []  # a burst worker unregisters on exit


def test_schedules_show_their_last_and_next_run(ops: Registry, ops_config: Path) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1, minutes=5)
    schedules.sync(ops, now=an_hour_ago)  # so the first tick is already due
    (tick,) = schedules.Scheduler(ops).tick()
    assert tick.outcome == "enqueued"

    (schedule,) = status_json(ops_config)["schedules"]

    assert schedule["name"] == "hourly-ping"
    assert schedule["job"] == "ping"
    assert schedule["state"] == "active"
    assert schedule["last_outcome"] == "enqueued"
    last = datetime.fromisoformat(schedule["last_run"])
    following = datetime.fromisoformat(schedule["next_run"])
    assert last == tick.nominal
    # The next run is the first hourly tick after now (the missed ones ran once, together).
    assert datetime.now(UTC) < following <= datetime.now(UTC) + timedelta(hours=1)
    assert (following - last) % timedelta(hours=1) == timedelta(0)


@pytest.mark.slow
def test_watch_refreshes_until_terminated(ops: Registry, ops_config: Path, tmp_path: Path) -> None:
    ops.enqueue("ping")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "taskkit", "status", "-c", str(ops_config), "--watch", "0.5",
         "--json"],
        env=cli_env(REDIS_URL=str(ops.config.redis.url.reveal())),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        ops.enqueue("ping")
        second = json.loads(watcher.stdout.readline())
    finally:
        watcher.send_signal(signal.SIGTERM)
        _out, err = watcher.communicate(timeout=30)

    assert watcher.returncode == 0, err
    assert by_name(first["queues"])["default"]["queued"] == 1
    assert second["taken_at"] > first["taken_at"]
    assert by_name(second["queues"])["default"]["queued"] in (1, 2)
    assert err == ""


def test_watch_in_text_mode_prints_a_dated_header_per_refresh_and_survives_outages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from taskkit.cli.ops import _watch_status
    from taskkit.errors import RedisUnavailableError
    from taskkit.status import Status

    reads = iter(["ok", "outage", "ok"])

    def read() -> Status:
        step = next(reads, None)
        if step is None:
            raise KeyboardInterrupt  # as Ctrl-C would, during the fourth read
        if step == "outage":
            raise RedisUnavailableError("cannot read status: Redis at redis://x/0 is away")
        return Status(redis="redis://x/0", queues=[], workers=[], schedules=[])

    before = signal.getsignal(signal.SIGTERM)
    try:
        _watch_status(read, as_json=False, interval=0.5)
    finally:
        signal.signal(signal.SIGTERM, before)
    shown = capsys.readouterr()
    assert shown.out.count("taskkit status at ") == 2
    assert shown.out.count("QUEUES") == 2
    assert shown.err == "error: cannot read status: Redis at redis://x/0 is away\n"


def test_an_unreachable_redis_is_one_line_without_the_password(tmp_path: Path) -> None:
    config = write_jobs_yaml(tmp_path, url="redis://:hunter22@127.0.0.1:1/0")
    done = subprocess.run(
        [sys.executable, "-m", "taskkit", "status", "-c", str(config)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot read status: Redis at redis://:***@127.0.0.1:1/0")
    assert "hunter22" not in done.stderr + done.stdout
    assert len(done.stderr.splitlines()) == 1
