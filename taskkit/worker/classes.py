"""The worker classes: RQ's ``fork``, ``simple`` and ``spawn`` workers with taskkit's bends.

Each is RQ's class with the bends of this package mixed in (one class per concern, see
:mod:`.base`), plus what differs per kind: the heartbeat TTL of a running job and the
second signal, which stops the job at once and retries or fails it with a reason (RQ kills
the horse and leaves the job "started" until a maintenance pass calls it abandoned).
"""

from __future__ import annotations

import logging
import os
import time
from types import FrameType
from typing import Literal

from rq import Queue, SimpleWorker, Worker, get_current_job
from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.worker import BaseWorker
from rq.worker.worker_classes import SpawnWorker

from taskkit.worker import horses
from taskkit.worker.base import REDIS_ERRORS, _now, _signal_name
from taskkit.worker.horses import Horses, _HorseOutcome
from taskkit.worker.job import TaskkitJob, _declared_job
from taskkit.worker.joblog import _log_ok
from taskkit.worker.metering import Metering
from taskkit.worker.outages import Outages
from taskkit.worker.pausing import Pausing
from taskkit.worker.rate_limits import RateLimits
from taskkit.worker.recovery import Recovery
from taskkit.worker.retries import Retries
from taskkit.worker.retry_policy import RetryPolicy
from taskkit.worker.rq_scheduler import RqSchedulerProcess
from taskkit.worker.spawn import spawn_horse
from taskkit.worker.stopping import Stopping, WorkerStoppedError, interrupted_reason
from taskkit.worker.tracing import Tracing

log = logging.getLogger("taskkit.worker")

WorkerClassName = Literal["fork", "simple", "spawn"]


class TaskkitForkWorker(
    RateLimits, Pausing, Stopping, Outages, Recovery, Metering, Tracing, Retries, RetryPolicy,
    RqSchedulerProcess, Horses, Worker,
):
    """RQ's forking worker (a work horse per job), with taskkit's bends."""

    _outcome: _HorseOutcome | None = None

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Renewed every ``heartbeat_interval``; lasts ``heartbeat_grace`` longer (RQ: 60 s).

        RQ shortens it to the job's remaining time near its timeout; not here: the worker
        kills an overrunning horse itself, and an expired heartbeat of a horse that still
        runs would let another worker recover the job while it runs.
        """
        return int(self.job_monitoring_interval) + self.settings.heartbeat_grace

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        """RQ's heartbeat of a running job, plus maintenance when due.

        So a dead worker's job is recovered even while every other worker is busy with a
        long job; and a Redis outage during a job no longer ends the worker.
        """
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_ERRORS as error:
            self._redis_lost(error)
            return
        self._redis_back()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """A second signal: kill the horse now and retry or fail its job with a reason.

        RQ kills the horse and exits, leaving the job "started" until its heartbeat
        expires and a maintenance pass calls it abandoned.
        """
        if self._signal_repeated():
            return
        running, horse = self.running, self.horse_pid
        if running is None or not horse:
            super().request_force_stop(signum, frame)
            return
        job_id = running[0].id
        log.warning("second %s: stopping now, interrupting job %s", _signal_name(signum), job_id)
        self.kill_horse()
        self.wait_for_horse()
        self._horse_pid = 0
        self._fail_interrupted(*running, interrupted_reason(signum))
        raise SystemExit

    def _fail_interrupted(self, job: Job, queue: Queue, reason: str) -> None:
        try:
            status = job.get_status()
        except InvalidJobOperation:
            return
        if status in (JobStatus.FINISHED, JobStatus.FAILED):
            return  # it ended just before the horse was killed
        job.ended_at = _now()
        retried = job.should_retry
        execution = next(iter(self.executions.values()), None)
        self.handle_job_failure(job, queue=queue, exc_string=reason, execution=execution)
        log.warning("job %s: %s; %s", job.id, reason, "retried" if retried else "failed")

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in a work horse; then, if the job returned, log its line."""
        if self._outcome is None or self._outcome.worker_pid != os.getpid():
            self._outcome = _HorseOutcome()  # per process: a pool forks its workers
        outcome = self._outcome
        outcome.clear()
        horses.horse_outcome = outcome  # read by the horse, a fork of this process
        try:
            super().execute_job(job, queue)
        finally:
            horses.horse_outcome = None
        elapsed = outcome.take()
        if elapsed is not None and isinstance(job, TaskkitJob) and log.isEnabledFor(logging.INFO):
            declared, _ = _declared_job(TaskkitJob.worker_registry(), job)
            if declared is not None:
                _log_ok(declared, job, elapsed)


class TaskkitSimpleWorker(
    RateLimits, Pausing, Stopping, Outages, Recovery, Metering, Tracing, Retries, RetryPolicy,
    RqSchedulerProcess, SimpleWorker,
):
    """RQ's simple worker (jobs run in the worker process), with taskkit's policies.

    It cannot renew a job's heartbeat while the job runs: its job is recovered at most
    the job's timeout plus ``heartbeat_grace`` after it started, plus maintenance.
    """

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """The job's timeout plus ``heartbeat_grace`` (RQ: plus 60 s)."""
        if job.timeout is not None and job.timeout > 0:
            return int(job.timeout) + self.settings.heartbeat_grace
        return int(super().get_heartbeat_ttl(job, working_time))

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """A second signal: raise :class:`WorkerStoppedError` in the running job.

        The job then fails (or is retried) with that reason and the worker exits. RQ
        raises SystemExit instead, which fails the job with no reason given. While the
        worker records a job's outcome, it finishes that first.
        """
        if self._signal_repeated():
            return
        if get_current_job() is not None:  # the job's own code is running
            raise WorkerStoppedError(interrupted_reason(signum))
        if self.running is not None:
            name = _signal_name(signum)
            log.warning("second %s: stopping once this job's outcome is recorded", name)
            return
        super().request_force_stop(signum, frame)


class TaskkitSpawnWorker(TaskkitForkWorker, SpawnWorker):
    """RQ's spawn worker (a fresh interpreter per job), with taskkit's policies.

    A spawned horse is a new interpreter: nothing the worker set up is there, and RQ
    reads the job's data (and may refuse it) before any job code would load jobs.yaml,
    so the job class loads its registry (from ``$TASKKIT_CONFIG``) first.
    """

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """RQ's posix_spawn, without the Redis password on the horse's command line.

        See :mod:`taskkit.worker.spawn`: RQ writes the connection settings into the ``-c``
        source that ``ps`` shows every user, and sets ``RQ_JOB_ID`` in the worker.
        """
        self._horse_pid = spawn_horse(self, job, queue)
        self.note_horse_beat(job)
        self.procline(f"Spawned {self._horse_pid} at {time.time()}")  # type: ignore[no-untyped-call]

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """Load the registry and logging set-up, then work the job as the fork horse does."""
        prepare = getattr(self.job_class, "worker_registry", None)
        if prepare is not None:
            prepare()
        super().main_work_horse(job, queue)


WORKER_CLASSES: dict[str, type[BaseWorker]] = {
    "fork": TaskkitForkWorker,
    "simple": TaskkitSimpleWorker,
    "spawn": TaskkitSpawnWorker,
}
"""The worker class of each ``--worker-class`` name."""
