"""``taskkit dev``: a throwaway Redis, a worker restarted on change, a clean Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from ops_support import OPS_APPS, cli_env, free_port, poll, write_jobs_yaml
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from worker_support import REPO_ROOT

from taskkit.redis_server import redis_answers
from taskkit.registry import Registry, load

pytestmark = pytest.mark.slow

NEW_JOB = '  pong: {func: "opsjobs:ping"}\n'


class DevProcess:
    """``taskkit dev`` in a session of its own, its output in a file."""

    def __init__(self, config: Path) -> None:
        self.output = config.parent / "dev.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "taskkit", "dev", "-c", str(config), "--poll", "0.2"],
                env=cli_env(),  # no REDIS_URL: jobs.yaml's default, where nothing listens
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, count: int = 1) -> list[str]:
        """The groups of the ``count``-th match of ``pattern``, once it is in the output."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            assert self.process.poll() is None, f"taskkit dev exited:\n{self.text()}"
            found[:] = list(re.finditer(pattern, self.text()))
            return len(found) >= count

        poll(seen, what=f"{pattern!r} x{count} in:\n{self.text()}")
        return list(found[count - 1].groups())

    def worker_pid(self, count: int) -> int:
        return int(self.wait_for(r"taskkit dev: worker started \(pid (\d+)\)", count)[0])


@pytest.fixture
def start_dev() -> Iterator[Callable[[Path], DevProcess]]:
    """Start ``taskkit dev -c CONFIG``; whatever is still running at the end is stopped."""
    started: list[DevProcess] = []

    def start(config: Path) -> DevProcess:
        started.append(DevProcess(config))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:  # the test failed half-way: leave nothing behind
            os.killpg(process.process.pid, signal.SIGINT)
            process.process.wait(timeout=60)


@pytest.fixture
def dev(tmp_path: Path, start_dev: Callable[[Path], DevProcess]) -> DevProcess:
    return start_dev(write_jobs_yaml(tmp_path, url=f"${{REDIS_URL:-{dead_url()}}}"))


def dead_url() -> str:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert not redis_answers(url)
    return url


def run_through(url: str, config: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueue job ``name`` at ``url`` and wait until the dev worker has finished it."""
    monkeypatch.setenv("REDIS_URL", url)
    registry: Registry = load(config, cached=False)
    job = registry.enqueue(name, value=name)

    def finished() -> bool:
        fetched = Job.fetch(job.id, connection=registry.connection, serializer=registry.serializer)
        return fetched.get_status() == JobStatus.FINISHED

    poll(finished, what=f"job {name} to finish")
    registry.connection.close()


def enqueue_cli(url: str, config: Path, name: str, *params: str) -> str:
    """``taskkit enqueue -c CONFIG NAME PARAMS`` at ``url``, as a user would; the job id."""
    done = subprocess.run(
        [sys.executable, "-m", "taskkit", "enqueue", "-c", str(config), name, *params],
        env=cli_env(REDIS_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def result_of(url: str, job_id: str) -> Any:
    """The return value of job ``job_id`` at ``url``, once a worker has finished it."""
    client = redis.Redis.from_url(url)
    job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)

    def done() -> bool:
        status = job.get_status(refresh=True)
        assert status != JobStatus.FAILED, job.latest_result()
        return status == JobStatus.FINISHED

    try:
        poll(done, what=f"job {job_id} to finish")
        return job.return_value(refresh=True)
    finally:
        client.close()


def session_members(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # the 6th field of stat: session id
            members.append(int(entry.name))
    return members


def test_dev_runs_jobs_picks_up_edits_keeps_going_on_bad_ones_and_stops_cleanly(
    dev: DevProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = dev.output.parent / "jobs.yaml"
    (url,) = dev.wait_for(r"started a throwaway redis-server at (redis://\S+)")
    first_worker = dev.worker_pid(1)
    run_through(url, config, "ping", monkeypatch)

    # A new job in jobs.yaml: the worker is restarted on the new file and runs it.
    config.write_text(config.read_text().replace("schedules:", NEW_JOB + "schedules:"))
    second_worker = dev.worker_pid(2)
    assert second_worker != first_worker
    run_through(url, config, "pong", monkeypatch)

    # A broken jobs.yaml: its error is printed, and the last good worker keeps working.
    good = config.with_name("good.yaml")
    good.write_text(config.read_text())  # to enqueue with, below
    broken = good.read_text().replace('func: "opsjobs:ping"}\n', "func: opsjobs:ping\n", 1)
    config.write_text(broken)  # an unclosed {
    dev.wait_for(r"not restarting; the worker keeps the last valid jobs.yaml")
    assert re.search(r"jobs\.yaml:\d+:\d+: .*invalid YAML", dev.text())
    os.kill(second_worker, 0)  # still alive
    run_through(url, good, "pong", monkeypatch)

    os.killpg(dev.process.pid, signal.SIGINT)  # Ctrl-C in its terminal
    assert dev.process.wait(timeout=60) == 0, dev.text()
    assert dev.text().rstrip().endswith("taskkit dev: stopped")
    assert session_members(dev.process.pid) == []
    assert session_members(second_worker) == []  # the worker and its scheduler child
    assert not redis_answers(url)


def payments_jobs_yaml(directory: Path, url: str) -> Path:
    """A copy of the payments example's jobs.yaml, importable from ``directory``, at ``url``."""
    text = (REPO_ROOT / "jobs.yaml").read_text(encoding="utf-8")
    copied = text.replace("pythonpath: [examples]", f"pythonpath: [{REPO_ROOT / 'examples'}]")
    copied = copied.replace("redis://localhost:6379/0", url)
    assert copied.count(str(REPO_ROOT / "examples")) == copied.count(url) == 1, copied
    path = directory / "jobs.yaml"
    path.write_text(copied, encoding="utf-8")
    return path


def factory_pids() -> list[int]:
    """Pids of the processes that built the payments app (conftest points the log here)."""
    log = Path(os.environ["PAYMENTS_FACTORY_LOG"])
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_dev_runs_the_payments_example_and_picks_up_a_new_queue_in_jobs_yaml(
    tmp_path: Path, start_dev: Callable[[Path], DevProcess]
) -> None:
    config = payments_jobs_yaml(tmp_path, dead_url())
    dev = start_dev(config)
    (url,) = dev.wait_for(r"started a throwaway redis-server at (redis://\S+)")
    first_worker = dev.worker_pid(1)

    # The example's own job, in the app context its entry asks for, on the app's database.
    assert result_of(url, enqueue_cli(url, config, "cleanup_sessions", "older_than_days=30")) == 0
    assert first_worker in factory_pids()  # dev's worker built the example app
    assert (tmp_path / "payments.sqlite").exists()

    # A job on a queue the running worker does not listen to: only a worker restarted on
    # the edited jobs.yaml can run it.
    text = config.read_text()
    edited = text.replace("  emails: {timeout: 1m}\n", "  emails: {timeout: 1m}\n  reports: {}\n")
    edited = edited.replace(
        "\nschedules:",
        "  pulse: {func: payments.jobs:heartbeat, queue: reports, context: none}\n\nschedules:",
    )
    assert edited.count("reports") == 2, edited
    config.write_text(edited)
    second_worker = dev.worker_pid(2)
    assert second_worker != first_worker
    assert "change detected (jobs.yaml)" in dev.text()
    beat = result_of(url, enqueue_cli(url, config, "pulse"))
    assert datetime.fromisoformat(beat).tzinfo is not None  # heartbeat's ISO time
    assert second_worker in factory_pids()

    os.killpg(dev.process.pid, signal.SIGINT)  # Ctrl-C in its terminal
    assert dev.process.wait(timeout=60) == 0, dev.text()
    assert dev.text().rstrip().endswith("taskkit dev: stopped")
    assert "Traceback" not in dev.text()
    assert session_members(dev.process.pid) == []
    assert session_members(second_worker) == []
    assert not redis_answers(url)


def test_dev_restarts_the_worker_when_a_job_module_changes(
    tmp_path: Path, start_dev: Callable[[Path], DevProcess]
) -> None:
    module = tmp_path / "devjobs.py"  # a copy under a name no other test imports
    shutil.copy(OPS_APPS / "opsjobs.py", module)
    config = tmp_path / "jobs.yaml"
    config.write_text(
        f"version: 1\npythonpath: [.]\nredis: {{url: '${{REDIS_URL:-{dead_url()}}}'}}\n"
        "jobs:\n  ping: {func: 'devjobs:ping'}\n",
        encoding="utf-8",
    )
    dev = start_dev(config)
    (url,) = dev.wait_for(r"started a throwaway redis-server at (redis://\S+)")
    first_worker = dev.worker_pid(1)
    assert result_of(url, enqueue_cli(url, config, "ping", "value=hello")) == "hello"

    source = module.read_text()
    assert "    return value\n" in source
    module.write_text(source.replace("    return value\n", '    return f"edited {value}"\n'))
    second_worker = dev.worker_pid(2)
    assert second_worker != first_worker
    assert "change detected (devjobs.py)" in dev.text()
    assert result_of(url, enqueue_cli(url, config, "ping", "value=hello")) == "edited hello"

    os.killpg(dev.process.pid, signal.SIGINT)
    assert dev.process.wait(timeout=60) == 0, dev.text()
    assert session_members(dev.process.pid) == []
    assert session_members(second_worker) == []
