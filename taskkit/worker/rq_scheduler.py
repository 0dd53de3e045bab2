"""RQ's own scheduler process (delayed jobs and retries), which every worker runs.

RQ's dies with two tracebacks whenever Redis goes away and outlives a SIGKILLed worker;
taskkit's stops with one line (the worker starts it again at a maintenance pass) and dies
with its worker. RQ's raises at every pass on one due entry it cannot read, so no
delayed job or retry of that queue is enqueued again; taskkit's removes an entry that is
no job id and sends a job whose hash cannot be read to its queue, whose worker fails it
with the reason. A stopping worker waits for it a bounded time, then kills it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterable
from typing import Any, cast

from rq import Queue
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from rq.utils import current_timestamp

from taskkit.logs import escape_controls
from taskkit.worker.base import REDIS_ERRORS, WorkerBase, _reason
from taskkit.worker.horses import die_with_parent
from taskkit.worker.queue import is_job_id, shown
from taskkit.worker.stopping import STOP_WAIT

log = logging.getLogger("taskkit.worker")


class TaskkitScheduledJobRegistry(ScheduledJobRegistry):
    """RQ's registry of delayed jobs, as its scheduler reads it: garbage is removed.

    RQ decodes every due entry (one that is no UTF-8 raises at every pass) and cuts it at
    ``:`` (a forged ``ID:x`` enqueues job ID before its time).
    """

    def get_jobs_to_schedule(
        self, timestamp: int | None = None, chunk_size: int = 1000
    ) -> list[str]:
        """RQ's: the ids of due entries; each entry that is no job id is removed and logged."""
        score = timestamp if timestamp is not None else current_timestamp()
        members = self.connection.zrangebyscore(self.key, 0, score, start=0, num=chunk_size)
        ids: list[str] = []
        for member in cast("list[bytes | str]", members):
            if is_job_id(member):
                ids.append(member.decode() if isinstance(member, bytes) else member)
                continue
            self.connection.zrem(self.key, member)
            log.error(
                "removed the entry %s from %s: it is not a job id (RQ ids are letters, digits, "
                "'_' and '-'); a producer wrote garbage to the registry of delayed jobs",
                shown(member),
                escape_controls(self.key),
            )
        return ids


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

    def prepare_registries(self, queue_names: Iterable[str] | None = None) -> None:
        """RQ's, with :class:`TaskkitScheduledJobRegistry`."""
        self._scheduled_job_registries = [
            TaskkitScheduledJobRegistry(  # type: ignore[no-untyped-call]
                name, connection=self.connection, serializer=self.serializer
            )
            for name in (queue_names or self.acquired_locks)
        ]

    def enqueue_scheduled_jobs(self) -> None:
        """RQ's; if a due job's hash cannot be read, the job goes to its queue, and the rest on.

        RQ reads every due job at once and raises on one it cannot read, at every pass;
        on the queue, the worker that takes it fails it alone, with the reason.
        """
        try:
            super().enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS:
            raise
        except Exception:
            if not self._queue_unreadable_jobs():
                raise
            super().enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    def _queue_unreadable_jobs(self) -> int:
        """Move due jobs whose hash cannot be read to their queue; how many there were."""
        moved = 0
        for name in self.acquired_locks:
            registry = TaskkitScheduledJobRegistry(  # type: ignore[no-untyped-call]
                name, connection=self.connection, serializer=self.serializer
            )
            for job_id in registry.get_jobs_to_schedule():
                try:
                    Job.fetch(job_id, connection=self.connection, serializer=self.serializer)
                except NoSuchJobError:
                    continue
                except Exception as error:  # what fails it on the queue says why
                    with self.connection.pipeline() as pipe:
                        pipe.zrem(registry.key, job_id)
                        pipe.rpush(Queue(name, connection=self.connection).key, job_id)
                        pipe.execute()
                    moved += 1
                    log.error(
                        "delayed job %s cannot be read (%s); put on queue %s, whose worker "
                        "fails it with the reason",
                        job_id,
                        escape_controls(f"{type(error).__name__}: {error}"[:200]),
                        escape_controls(name),
                    )
        return moved

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
            self.scheduler.enqueue_scheduled_jobs()
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
