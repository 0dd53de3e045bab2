"""Helpers for tests that run taskkit workers as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
WORKER_APPS = TESTS / "apps" / "workerapps"
# The payments example plus jobs that report the context they ran in (probes.py).
PROBE_JOBS = WORKER_APPS / "jobs.yaml"
PICKLE_PROBE_JOBS = WORKER_APPS / "jobs-pickle.yaml"


class WorkerCli:
    """Runs ``taskkit`` commands as real subprocesses against the test Redis and database."""

    def __init__(self, redis_url: str, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        self.env.pop("TASKKIT_CONFIG", None)
        self.env.pop("TASKKIT_EAGER", None)
        self.factory_log = Path(self.env["PAYMENTS_FACTORY_LOG"])
        self.teardown_log = Path(self.env["PAYMENTS_TEARDOWN_LOG"])
        self._started: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def command(*args: str) -> list[str]:
        """The argv of ``taskkit ARGS`` with this interpreter."""
        script = Path(sys.executable).parent / "taskkit"
        if script.exists():
            return [str(script), *args]
        return [sys.executable, "-c", "from taskkit.cli import main; main()", *args]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``taskkit ARGS`` to the end; stdout and stderr are captured as text."""
        return subprocess.run(
            self.command(*args),
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``taskkit ARGS``; stderr goes to a file (see :meth:`stderr`)."""
        log = (self.tmp_path / f"stderr-{len(self._started)}.log").open("wb")
        process = subprocess.Popen(
            self.command(*args), env=self.env, cwd=self.tmp_path, stdout=log, stderr=log
        )
        log.close()
        self._started.append(process)
        return process

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        """What a started process wrote so far."""
        index = self._started.index(process)
        return (self.tmp_path / f"stderr-{index}.log").read_text(encoding="utf-8")

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 30) -> int:
        """SIGTERM a started process and return its exit code."""
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"{process.args!r} did not stop within {timeout:g} s "
                f"of SIGTERM.\n--- its stacks ---\n{stacks(process.pid)}"
                f"\n--- its output ---\n{self.stderr(process)[-6000:]}"
            )

    def factory_pids(self) -> list[int]:
        """The pid of every ``create_app()`` call, in order."""
        return [int(line) for line in _lines(self.factory_log)]

    def teardowns(self) -> list[tuple[int, str]]:
        """(pid, outcome) of every app-context teardown after the app was built."""
        return [
            (int(pid), outcome) for pid, outcome in (x.split() for x in _lines(self.teardown_log))
        ]

    def close(self) -> None:
        for process in self._started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def stacks(pid: int) -> str:
    """The Python stacks of every thread of a process (py-spy), for a hang's report."""
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy) if spy.exists() else "py-spy", "dump", "--pid", str(pid)]
    try:
        dumped = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"(py-spy could not dump it: {error})"
    return dumped.stdout + dumped.stderr


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)
