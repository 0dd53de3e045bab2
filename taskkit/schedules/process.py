"""The scheduler process: its loop through Redis outages, and its life under a worker.

``taskkit run-scheduler`` runs :func:`run_scheduler` in the foreground;
``taskkit run-worker --with-scheduler`` runs the same loop in a child process that a
thread of the worker restarts when it dies (:class:`BackgroundScheduler`).

Redis going away ends neither: a pass that cannot reach Redis is retried 0.5, 1, then
every 2 s (shorter than a worker's backoff: a scheduler is one client, and every second
it waits after Redis is back is a second of ticks fired late). ``run-scheduler`` gives
up after ``redis_timeout`` with one error line, as a worker does; the child of a worker
never gives up on its own: the worker decides, and the child dies with it. When Redis
comes back empty, the first pass syncs the schedules again (see :mod:`taskkit.schedules`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import chain, repeat
from typing import Any, NoReturn

import redis

from taskkit import connection
from taskkit.redaction import scrub
from taskkit.registry import Registry, load
from taskkit.schedules import Change, Scheduler
from taskkit.schedules.foreign import neighbours
from taskkit.worker import REDIS_ERRORS, RedisGoneError, die_with_parent

log = logging.getLogger("taskkit.scheduler")

RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Seconds between passes while Redis is away; the last one repeats."""
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""Seconds before a dead child scheduler is started again; the last one repeats, and the
first applies again once a child lived for :data:`HEALTHY_AFTER` seconds."""
HEALTHY_AFTER = 60.0
WHO = "taskkit's scheduler (recurring schedules)"
"""How the log names this scheduler: a worker also runs RQ's, for delayed jobs."""


class SchedulerLoop:
    """Runs a :class:`~taskkit.schedules.Scheduler` pass every ``interval`` seconds.

    ``redis_timeout`` (None: for ever) bounds how long Redis may be away before
    :class:`~taskkit.worker.RedisGoneError` ends the loop; ``parent``, when set, is the
    worker whose death ends it too.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        redis_timeout: int | None,
        parent: int | None = None,
        sync_first: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.redis_timeout = redis_timeout
        self.parent = parent
        self.stopping = False
        self._sync_first = sync_first
        self._answered = False
        self._lost_at: float | None = None
        self._delays: Iterator[float] | None = None
        self._last_failure: str | None = None

    def stop(self, *_: Any) -> None:
        """Return from :meth:`run` after the current pass (a signal handler)."""
        self.stopping = True

    def run(self, *, burst: bool = False) -> None:
        """Pass after pass until stopped (or, with ``burst``, until one pass succeeded)."""
        try:
            while not self.stopping:
                done = self._pass()
                if done and burst:
                    break
                time.sleep(self._until_next_pass() if done else self._retry_delay())
                if self.parent is not None and os.getppid() != self.parent:
                    break  # the worker died without stopping us
        finally:
            self._goodbye()

    def _pass(self) -> bool:
        """One pass (sync first, if asked); whether it reached the end."""
        try:
            if self._sync_first:
                _log_changes(self.scheduler.sync())
                _log_neighbours(self.scheduler.conn)
                self._sync_first = False
            self.scheduler.heartbeat()
            self.scheduler.tick()
        except redis.AuthenticationError:
            if not self._answered:
                raise  # a wrong password is not an outage: say so at once
            self._redis_lost(redis.ConnectionError("Redis refused the password"))
            return False
        except REDIS_ERRORS as error:
            self._redis_lost(error)
            return False
        except Exception as error:  # nothing in Redis or the file may end the scheduler
            self._pass_failed(error)
            return False
        self._redis_back()
        return True

    def _until_next_pass(self) -> float:
        # Just after a whole multiple of the interval, where ticks fall: a tick is fired
        # milliseconds after its time rather than up to an interval late.
        interval = self.scheduler.interval
        return interval - (time.time() % interval) + 0.002

    def _retry_delay(self) -> float:
        if self._delays is None:
            self._delays = chain(RETRY_DELAYS, repeat(RETRY_DELAYS[-1]))
        return next(self._delays)

    def _redis_lost(self, error: Exception) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            limit = (
                "for ever" if self.redis_timeout is None else f"for up to {self.redis_timeout} s"
            )
            log.warning(
                "%s %s Redis at %s (%s); retrying every %g to %g s, %s",
                WHO,
                "lost" if self._answered else "is waiting for",
                connection.describe(self.scheduler.registry.redis_url),
                _reason(error),
                RETRY_DELAYS[0],
                RETRY_DELAYS[-1],
                limit,
            )
        gone_for = time.monotonic() - self._lost_at
        if self.redis_timeout is not None and gone_for >= self.redis_timeout:
            raise RedisGoneError(self.redis_timeout, error, at_start=not self._answered)

    def _redis_back(self) -> None:
        self._answered = True
        self._delays = None
        self._last_failure = None
        if self._lost_at is not None:
            log.warning(
                "Redis is back after %.1f s; %s goes on", time.monotonic() - self._lost_at, WHO
            )
            self._lost_at = None

    def _pass_failed(self, error: Exception) -> None:
        """Log a failed pass once per distinct error (the traceback at debug level)."""
        text = f"{type(error).__name__}: {_reason(error)}"
        if text != self._last_failure:
            self._last_failure = text
            log.error("%s: a pass failed (%s); trying again", WHO, text)
            log.debug("the failed pass", exc_info=error)

    def _goodbye(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # without Redis, its key expires on its own
            self.scheduler.goodbye()


def run_scheduler(
    registry: Registry, *, interval: float = 1.0, burst: bool = False, redis_timeout: int
) -> None:
    """``taskkit run-scheduler``: sync, then fire ticks until SIGTERM/SIGINT.

    Raises :class:`~taskkit.errors.RedisUnavailableError` when Redis stays away for
    ``redis_timeout`` seconds, or refuses the password at start.
    """
    scheduler = Scheduler(registry, interval=interval)
    loop = SchedulerLoop(scheduler, redis_timeout=redis_timeout, sync_first=True)
    signal.signal(signal.SIGTERM, loop.stop)
    signal.signal(signal.SIGINT, loop.stop)
    with connection.redis_errors(registry.redis_url, "run the scheduler"):
        try:
            loop.run(burst=burst)
        except RedisGoneError as gone:
            _report_redis_gone(registry, gone)


def _report_redis_gone(registry: Registry, gone: RedisGoneError) -> NoReturn:
    doing = (
        f"{'start' if gone.at_start else 'keep running'} the scheduler (no answer from Redis "
        f"for {gone.seconds} s; wait longer with --redis-timeout or worker.redis_timeout)"
    )
    with connection.redis_errors(registry.redis_url, doing):
        raise gone.last_error
    raise gone  # not reached: redis_errors turns every Redis error into its own


# -- under a worker ------------------------------------------------------------------------


class BackgroundScheduler:
    """``run-worker --with-scheduler``: the scheduler in a child process, restarted if it
    dies while the worker runs.

    The child is a fresh interpreter that loads jobs.yaml itself (the scheduler needs no
    app), started by a thread of the worker that waits for it: RQ's loop leaves no other
    place to notice its death, and a fork from a thread could copy a lock that another
    thread holds, while an exec starts clean. A child that exits 0 was asked to stop (a
    SIGTERM of its own) and is not restarted.
    """

    def __init__(self, registry: Registry, *, interval: float = 1.0) -> None:
        options = {
            "config": str(registry.path.resolve()),
            "interval": interval,
            "parent": os.getpid(),
            "sys_path": sys.path,  # the worker's, as multiprocessing's spawn passes it
        }
        # -P: nothing in the current folder may shadow a module before sys.path is set.
        self.command = [sys.executable, "-P", "-c", _CHILD, json.dumps(options)]
        self.child: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._supervise, name="taskkit-scheduler-supervisor", daemon=True
        )

    def start(self) -> BackgroundScheduler:
        """Start the child, and the thread that restarts it."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child and wait for it (SIGKILL after ``timeout``)."""
        with self._lock:
            self._stopped.set()
            child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            self._thread.join(timeout)
            if self._thread.is_alive():
                child.kill()
        self._thread.join(timeout)

    def _supervise(self) -> None:
        delays = iter(RESTART_DELAYS)
        while not self._stopped.is_set():
            started = time.monotonic()
            ended = self._run_child()
            if ended is None or self._stopped.is_set():
                return
            if time.monotonic() - started >= HEALTHY_AFTER:
                delays = iter(RESTART_DELAYS)
            delay = next(delays, RESTART_DELAYS[-1])
            log.error("%s %s; starting it again in %g s", WHO, ended, delay)
            if self._stopped.wait(delay):
                return

    def _run_child(self) -> str | None:
        """Start the child and wait for it: how it ended, or None if it was asked to stop."""
        with self._lock:
            if self._stopped.is_set():
                return None
            try:
                child = self.child = subprocess.Popen(self.command)
            except OSError as error:  # out of processes or file descriptors: try later
                return f"could not start ({error})"
        code = child.wait()
        if code != 0:
            return f"(pid {child.pid}) {_ended(code)}"
        if not self._stopped.is_set():
            log.warning("%s (pid %d) was stopped; not restarting it", WHO, child.pid)
        return None


_CHILD = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1])['sys_path']; "
    "from taskkit.schedules.process import child_main; child_main()"
)


def child_main(argv: list[str] | None = None) -> None:
    """The body of :class:`BackgroundScheduler`'s child process."""
    from taskkit.logs import setup_inherited

    options = json.loads((argv or sys.argv[1:])[0])
    parent = int(options["parent"])
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when to stop
    setup_inherited()
    try:
        registry = load(options["config"])
    except Exception as error:  # one line in the worker's log; the worker retries later
        log.error("%s cannot start: %s", WHO, _reason(error))
        sys.exit(1)
    scheduler = Scheduler(registry, interval=float(options["interval"]))
    loop = SchedulerLoop(scheduler, redis_timeout=None, parent=parent)
    signal.signal(signal.SIGTERM, loop.stop)
    try:
        loop.run()
    except Exception as error:  # a password Redis refuses at start: one line, then a retry
        log.error("%s stopped: %s", WHO, _reason(error))
        sys.exit(1)


# -- small helpers ---------------------------------------------------------------------------


def _log_changes(changes: list[Change]) -> None:
    for change in changes:
        if change.action != "unchanged":
            log.info("sync: %s", change)


def _log_neighbours(conn: redis.Redis) -> None:
    """Say once, at start, what a live rqscheduler on this database means."""
    found = neighbours(conn)
    note = found.note()
    if note:
        (log.warning if found.rq_schedulers else log.info)("%s", note)


def _ended(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {code}"


def _reason(error: Exception) -> str:
    """The first line of an error, without any password it may quote."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return scrub(text).rstrip(".")


__all__ = ["BackgroundScheduler", "SchedulerLoop", "child_main", "run_scheduler"]
