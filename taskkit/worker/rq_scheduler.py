"""RQ's own scheduler process (delayed jobs and retries), which every worker runs.

RQ's dies with two tracebacks whenever Redis goes away and outlives a SIGKILLed worker;
taskkit's stops with one line (the worker starts it again at a maintenance pass) and dies
with its worker. A stopping worker waits for it a bounded time, then kills it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler

from taskkit.worker.base import REDIS_ERRORS, WorkerBase, _reason
from taskkit.worker.horses import die_with_parent
from taskkit.worker.stopping import STOP_WAIT

log = logging.getLogger("taskkit.worker")

class TaskkitScheduler(RQScheduler):
    """RQ's scheduler process (it moves due delayed jobs and retries to their queues).

    RQ's dies with two tracebacks whenever Redis goes away; this one stops with one log
    line, and the worker starts it again at a maintenance pass once Redis is back. And
    RQ's outlives a worker that is SIGKILLed (an orphan process per killed worker);
    this one dies with its worker, as work horses do.
    """

    _worker_pid: int | None = None

    def start(self) -> Any:
        """Fork the scheduler process, remembering which worker it belongs to."""
        self._worker_pid = os.getpid()
        return super().start()  # type: ignore[no-untyped-call]

    def work(self) -> None:
        """RQ's scheduler loop, until stopped, its worker dies, or Redis goes away."""
        if self._worker_pid is not None and self._worker_pid != os.getpid():
            die_with_parent(self._worker_pid)
        try:
            super().work()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as error:
            log.warning(
                "RQ's scheduler (delayed jobs and retries) stopped: lost Redis (%s); the worker "
                "starts it again at a maintenance pass once Redis is back",
                _reason(error),
            )


class RqSchedulerProcess(WorkerBase):
    """The worker's side of RQ's scheduler process: start it as taskkit's, stop it in time."""

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """RQ's, with :class:`TaskkitScheduler` (this private hook is the only way in)."""
        self.scheduler = TaskkitScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
        finally:
            self.scheduler.release_locks()  # type: ignore[no-untyped-call]
            self.scheduler.register_death()

    def stop_scheduler(self) -> None:
        """Stop RQ's scheduler process, killing it if it has not stopped in :data:`STOP_WAIT` s.

        RQ sends SIGTERM and waits with no bound (a scheduler stuck on an unreachable
        Redis held its worker's exit for as long).
        """
        process = self.scheduler._process if self.scheduler is not None else None
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(STOP_WAIT)
        if process.is_alive():
            log.warning("the scheduler process did not stop within %.0f s; killed", STOP_WAIT)
            process.kill()
            process.join(STOP_WAIT)
