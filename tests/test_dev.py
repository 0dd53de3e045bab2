"""``taskkit dev``: a throwaway Redis, a worker restarted on change, a clean Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops_support import cli_env, free_port, poll, write_jobs_yaml
from rq.job import Job, JobStatus

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
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    process = DevProcess(write_jobs_yaml(tmp_path, url=f"${{REDIS_URL:-{dead_url()}}}"))
    yield process
    if process.process.poll() is None:  # the test failed half-way: leave nothing behind
        os.killpg(process.process.pid, signal.SIGINT)
        process.process.wait(timeout=60)


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
