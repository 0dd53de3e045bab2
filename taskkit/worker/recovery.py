"""Bounded recovery of a dead worker's job (RQ: up to ~18 minutes).

RQ finds a dead worker's job only once the job's heartbeat (``job_monitoring_interval`` +
60 s) has expired *and* a maintenance pass runs: every 600 s, and only from a worker that
is between jobs or idle, whose wait for a job may last ~400 s. Here a heartbeat outlives
its renewal by ``heartbeat_grace``, maintenance runs every ``maintenance_interval`` (also
from a busy worker's heartbeat loop), and an idle worker wakes up often enough to run it;
see :func:`recovery_bound`. Maintenance also survives the garbage RQ's own would stop on.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from rq import Queue
from rq.exceptions import NoSuchJobError, StopRequested
from rq.job import Job, JobStatus
from rq.registry import clean_registries
from rq.worker_registration import clean_worker_registry, register

from taskkit.config import WorkerConfig
from taskkit.worker.base import REDIS_ERRORS, WorkerBase, _now
from taskkit.worker.queue import is_job_id, shown

log = logging.getLogger("taskkit.worker")

def wake_interval(settings: WorkerConfig) -> int:
    """How long an idle worker waits for a job before it looks at maintenance again."""
    return max(1, settings.maintenance_interval // 3)


def recovery_bound(settings: WorkerConfig) -> int:
    """Seconds from a fork or spawn worker's death until its job is retried or failed.

    The job's heartbeat was renewed less than ``heartbeat_interval`` before the death and
    expires ``heartbeat_grace`` after its renewal interval; the next maintenance pass of a
    running worker follows within ``maintenance_interval`` plus the time that worker may
    take to notice (an idle worker's wait, or a busy one's heartbeat). A simple worker
    renews no heartbeat during a job: its job's heartbeat lasts the job's timeout plus
    ``heartbeat_grace`` from the job's start, so its bound is that instead of the first
    two terms, counted from the job's start (240 s for the default 3 min timeout).
    """
    notice = max(wake_interval(settings), settings.heartbeat_interval)
    return (
        settings.heartbeat_interval
        + settings.heartbeat_grace
        + settings.maintenance_interval
        + notice
    )


class Recovery(WorkerBase):
    """Maintenance that recovers dead workers' jobs in bounded time and survives garbage."""

    @property
    def dequeue_timeout(self) -> int:
        """Wake up at least three times per maintenance interval (RQ: every ~400 s)."""
        return min(super().dequeue_timeout, max(1, int(self.maintenance_interval) // 3))

    def clean_registries(self) -> None:
        """RQ's registry cleaning, under a lock that cannot outlive a failed pass.

        RQ holds the lock for up to 899 s if cleaning raises or its worker dies in it,
        which would stop every worker from recovering abandoned jobs for 15 minutes.
        """
        self._ensure_registered()
        for queue in self.queues:
            key = queue.registry_cleaning_key
            lock_seconds = max(int(self.maintenance_interval), 10)
            if not self.connection.set(key, 1, nx=True, ex=lock_seconds):
                continue
            try:
                self._drop_unreadable_entries(queue)
                self._requeue_never_started(queue)
                clean_registries(queue, self._exc_handlers)
                clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
            except (*REDIS_ERRORS, StopRequested):
                raise
            except Exception:  # one bad entry must not stop the recovery of the others
                log.exception("cleaning the registries of queue %s failed", queue.name)
            finally:
                self.connection.delete(key)
        self.last_cleaned_at = _now()  # type: ignore[assignment]

    def _drop_unreadable_entries(self, queue: Queue) -> None:
        """Remove entries that are no job id from the lists RQ's cleaning reads.

        RQ raises on such an entry in the started registry (once it expired) or in the
        intermediate list, so every pass failed there and the queue's abandoned jobs were
        never recovered again.
        """
        started = queue.started_job_registry.key
        members = cast("list[bytes]", self.connection.zrangebyscore(started, 0, time.time()))
        for member in members:
            if not is_job_id(member.split(b":", 1)[0]):
                self.connection.zrem(started, member)
                log.error("removed the entry %s from %s: not a job id", shown(member), started)
        intermediate = queue.intermediate_queue.key
        for entry in cast("list[Any]", self.connection.lrange(intermediate, 0, -1)):
            if not is_job_id(entry):
                self.connection.lrem(intermediate, 0, entry)
                log.error("removed the entry %s from %s: not a job id", shown(entry), intermediate)

    def _requeue_never_started(self, queue: Queue) -> None:
        """Put back on ``queue`` the jobs a worker took but never started, then lost.

        A worker registers a job as started before its work horse marks it so; if the
        horse never gets there (the worker killed, Redis gone at that moment), the entry
        expires with the job still "queued". RQ's cleanup drops such an entry, leaving
        the job in no queue or registry.
        """
        for job_id in queue.started_job_registry.get_expired_job_ids():
            try:
                job = self.job_class.fetch(
                    job_id, connection=self.connection, serializer=self.serializer
                )
            except NoSuchJobError:
                continue
            if job.get_status(refresh=False) != JobStatus.QUEUED:
                continue
            if self.connection.lpos(queue.key, job_id) is not None:
                continue  # put back already (or requeued by hand)
            queue.intermediate_queue.remove(job_id)
            queue.enqueue_job(job, at_front=True)
            log.warning(
                "job %s was taken but never started by a worker that died; requeued", job_id
            )

    def _ensure_registered(self) -> None:
        """Register this worker again if Redis lost it (a restart without persistence).

        RQ's worker goes on working after such a restart, but is missing from ``rq info``
        and ``taskkit status`` until it restarts.
        """
        if self.birth_date is None or self.connection.sismember(self.redis_workers_keys, self.key):
            return
        with self.connection.pipeline() as pipeline:
            pipeline.hset(self.key, mapping=self.serialize())
            register(self, pipeline)
            pipeline.expire(self.key, self.worker_ttl + 60)
            pipeline.execute()
        log.warning("Redis had lost this worker's registration (a restart?); registered again")

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance; without Redis, it is tried again later instead of quitting."""
        try:
            with self._quitting_on_error():
                super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as error:
            self._redis_lost(error)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's wait for a job (entries that are no job id are dropped by TaskkitQueue)."""
        with self._quitting_on_error():
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

