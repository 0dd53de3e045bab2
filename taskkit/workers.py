"""The worker processes: how they stop, recover the jobs of dead workers, and outlast Redis.

These are RQ's own workers (``fork``, ``simple``, ``spawn``) and worker pool, changed
where RQ 3.0 loses time or jobs when something dies (DESIGN §8, issue #6):

- **Bounded recovery.** RQ finds a dead worker's job only once the job's heartbeat
  (``job_monitoring_interval`` + 60 s) has expired *and* a maintenance pass runs: every
  600 s, and only from a worker that is between jobs or idle, whose wait for a job may
  last ~400 s. Here a heartbeat outlives its renewal by ``heartbeat_grace``, maintenance
  runs every ``maintenance_interval`` (also from a busy worker's heartbeat loop), and an
  idle worker wakes up often enough to run it; see :func:`recovery_bound`.
- **A work horse dies with its worker**, so an orphan never runs on beside the retry of
  its own job.
- **A second SIGTERM/SIGINT** stops the job at once and retries or fails it with a
  reason, instead of leaving it "started" until its heartbeat expires.
- **Redis outages**: a Redis error no longer ends the worker wherever it happens; the
  worker retries with backoff and gives up, with one clear error, only after
  ``redis_timeout`` seconds without Redis.

The settings (:class:`~taskkit.config.WorkerConfig`) are per process, like the job class's
registry: RQ's worker pool builds its workers without passing options through.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

import redis
from rq import Queue, SimpleWorker, Worker, get_current_job
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import InvalidJobOperation, NoSuchJobError, StopRequested
from rq.job import Job, JobStatus
from rq.registry import clean_registries
from rq.scheduler import RQScheduler
from rq.worker import BaseWorker
from rq.worker.worker_classes import SpawnWorker
from rq.worker_pool import WorkerData, WorkerPool
from rq.worker_registration import clean_worker_registry, register

from taskkit.config import WorkerConfig
from taskkit.metrics import JobMetrics
from taskkit.spawn import spawn_horse
from taskkit.tracing import JobTracing

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from redis.client import Pipeline
    from rq.executions import Execution

log = logging.getLogger("taskkit.worker")

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
"""What redis-py raises when Redis cannot be reached or does not answer in time."""
REDIS_GONE_EXIT = 75
"""Exit status of a pool worker that gave up on Redis (EX_TEMPFAIL)."""
BEAT_EVERY = 1.0
"""Seconds within which a worker's repeated heartbeat, and ``rq suspend`` check, are
skipped: RQ makes each once or more per job, a Redis round trip or three each time."""
MIN_SKIPPED_TTL = 15
PUBSUB_WAKE = 1.0
"""Seconds the command-channel thread waits for a message before it looks at its stop
flag again (RQ: 60, which a stopping worker could wait out in full)."""
STOP_WAIT = 3.0
"""Seconds a stopping worker waits for its command-channel thread, and for its scheduler
process before killing it."""
"""A heartbeat is skipped only if the last one keeps the worker's key alive this many
seconds past the longest wait before the next."""
_PR_SET_PDEATHSIG = 1
# Loaded and looked up once, in the worker, so that each forked work horse only makes the
# call (ctypes builds a function pointer on first lookup: in every horse, were it done there).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PRCTL = _LIBC.prctl if _LIBC is not None else None


class WorkerStoppedError(BaseException):
    """Raised in a simple worker's job when a second signal stops the worker.

    A BaseException, like KeyboardInterrupt, so that a job's ``except Exception`` does
    not swallow it.
    """


class RedisGoneError(Exception):
    """Redis did not answer for ``redis_timeout`` seconds; the worker stopped."""

    def __init__(self, seconds: int, last_error: Exception, *, at_start: bool = False) -> None:
        super().__init__(f"no answer from Redis for {seconds} s")
        self.seconds = seconds
        self.last_error = last_error
        self.at_start = at_start


def use_settings(settings: WorkerConfig) -> None:
    """Make ``settings`` the recovery and Redis settings of every worker of this process."""
    _Policies.settings = settings


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
            log.warning("the scheduler stopped: lost Redis (%s); it restarts later", _reason(error))


# JobMetrics: each job's outcome rides on the transaction RQ sends when it ends;
# JobTracing: each job runs in a consumer span continuing its enqueue's trace.
class _Policies(JobMetrics, JobTracing, BaseWorker):
    """What every taskkit worker changes in RQ's: maintenance, Redis outages, queues."""

    settings: ClassVar[WorkerConfig] = WorkerConfig()
    max_connection_wait_time = 10.0  # RQ's backoff between tries grows up to 60 s

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", self.settings.maintenance_interval)
        kwargs.setdefault("job_monitoring_interval", self.settings.heartbeat_interval)
        # Names, so that RQ builds the queues with this worker's job class: maintenance
        # must read a malformed job hash as the worker does, not crash on it.
        super().__init__(_queue_names(queues), *args, **kwargs)
        self.redis_lost_at: float | None = None
        self.redis_gone: RedisGoneError | None = None
        self.running: tuple[Job, Queue] | None = None
        # What the round-trip savings below need to know (see heartbeat, set_state).
        self._last_beat = (-math.inf, 0)  # (monotonic time, TTL it set)
        self._job_in_hand = False  # dequeued, not yet run: a stop must let it run first
        self._state_written: str | None = None
        self._suspension_checked_at = -math.inf

    @property
    def dequeue_timeout(self) -> int:
        """Wake up at least three times per maintenance interval (RQ: every ~400 s)."""
        return min(super().dequeue_timeout, max(1, int(self.maintenance_interval) // 3))

    # -- maintenance -------------------------------------------------------------------

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
            super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as error:
            self._redis_lost(error)

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

    # -- stopping ----------------------------------------------------------------------

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """RQ's start-up (registration, pubsub), during which a stop is remembered.

        RQ installs its signal handlers only after it registered the worker: a SIGTERM
        in between killed it with the worker left registered in Redis. Now the loop
        stops at its first turn instead, deregistering as after any warm shutdown.
        """
        signal.signal(signal.SIGTERM, self._stop_once_started)
        signal.signal(signal.SIGINT, self._stop_once_started)
        super().bootstrap(*args, **kwargs)

    def _stop_once_started(self, signum: int, frame: FrameType | None) -> None:
        log.warning("%s while starting: stopping before the first job", _signal_name(signum))
        self._stop_requested = True
        self._shutdown_requested_date = _now()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """RQ's warm shutdown, remembered so that it cannot be lost.

        When idle, RQ raises StopRequested from the signal handler wherever the worker
        happens to be; code that catches ``Exception`` there (in RQ, redis-py or a
        registry cleaning pass) swallowed it, and the worker then ignored the signal
        for good. The flag makes the next heartbeat of the wait loop raise it again.
        """
        self._stop_requested = True
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def subscribe(self) -> None:
        """RQ's command channel (``rq``'s stop-job and shutdown commands), whose listener
        thread wakes every :data:`PUBSUB_WAKE` s instead of RQ's 60.

        Waiting on the socket sends nothing to Redis: the shorter wait costs no round trip.
        """
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        # RQ annotates the attribute as None only.
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_WAKE,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )

    def unsubscribe(self) -> None:
        """Stop the command channel's thread, waiting :data:`STOP_WAIT` s at most.

        RQ sends UNSUBSCRIBE and calls the thread's ``stop()``, which since redis-py 8.2
        joins it with no timeout while it sits in a 60 s read: a stopping worker waited
        up to a minute. The thread closes its connection itself when it leaves its loop.
        """
        thread, self.pubsub_thread = self.pubsub_thread, None
        if thread is None:
            return
        try:
            thread.stop(timeout=STOP_WAIT)  # redis-py >= 8.2 joins here
        except TypeError:  # older redis-py: stop() takes no timeout and does not join
            thread.stop()
            thread.join(timeout=STOP_WAIT)
        if thread.is_alive():
            log.warning("the command channel's thread did not stop; leaving it behind")

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

    # -- Redis outages ------------------------------------------------------------------

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat in one round trip, at most once per :data:`BEAT_EVERY`.

        RQ sends its three commands one by one, and three times per job from its loop
        (9 of a simple worker's 20 round trips per no-op job). A beat is skipped when the
        last one, under a second ago, keeps the key alive well past the next (see
        :meth:`_beaten_recently`): no reader of the key can tell. Without Redis it notes
        the outage and, when idle past ``redis_timeout``, stops the worker (RQ would
        retry forever). An idle worker asked to stop stops here (see
        :meth:`request_stop`).
        """
        ttl = timeout or self.worker_ttl + 60
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            self._last_beat = (time.monotonic(), ttl)
            return
        if self._stop_requested and self.running is None and not self._job_in_hand:
            raise StopRequested
        if timeout is None and self._beaten_recently():
            return
        try:
            with self.connection.pipeline(transaction=False) as beat:
                super().heartbeat(timeout, beat)
                beat.execute()
        except REDIS_ERRORS as error:
            self._redis_lost(error)
            self._give_up_past_deadline(error)
            return
        self._last_beat = (time.monotonic(), ttl)
        self._redis_back()

    def _beaten_recently(self) -> bool:
        """Whether the last beat was under :data:`BEAT_EVERY` ago and keeps the worker's
        key alive past the longest wait before the next one, with a margin.

        Every beat counts, also a pipelined one with a job's shorter TTL, and a fork
        horse's (see :meth:`note_horse_beat`).
        """
        beaten_at, ttl = self._last_beat
        elapsed = time.monotonic() - beaten_at
        lasts = ttl - elapsed
        return elapsed < BEAT_EVERY and lasts > self.dequeue_timeout + MIN_SKIPPED_TTL

    def note_horse_beat(self, job: Job) -> None:
        """A work horse is about to renew this worker's key with a job's TTL."""
        self._last_beat = (time.monotonic(), self.get_heartbeat_ttl(job))

    def reorder_queues(self, reference_queue: Queue) -> None:
        """RQ's; RQ calls it right after it took a job off ``reference_queue``."""
        self._job_in_hand = True
        super().reorder_queues(reference_queue)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's, minus the write of a state Redis already holds (RQ writes "idle" twice
        per job); and the state shown in ``rq info`` is not worth ending the worker for.

        RQ sets it outside its retry loop, so a Redis outage that outlasts a job ended
        the worker right after it.
        """
        if pipeline is None and state == self._state_written:
            self._state = state
            return
        try:
            super().set_state(state, pipeline)
        except REDIS_ERRORS as error:
            self._state_written = None
            self._redis_lost(error)
            return
        self._state_written = state

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's ``rq suspend`` check, at most once per :data:`BEAT_EVERY` (RQ: once per
        job, a round trip each); a Redis error here no longer ends the worker."""
        if time.monotonic() - self._suspension_checked_at < BEAT_EVERY:
            return
        try:
            super().check_for_suspension(burst)
        except REDIS_ERRORS as error:
            self._redis_lost(error)
            return
        self._suspension_checked_at = time.monotonic()

    def teardown(self) -> None:
        """RQ's teardown; without Redis the worker's death cannot be recorded, and is logged."""
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as error:
            log.warning("could not record this worker's exit in Redis (%s)", _reason(error))

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run one job; losing Redis while recording it no longer ends the worker.

        A job whose outcome could not be recorded stays "started" in Redis and is
        recovered as abandoned once Redis is back.
        """
        if not job.origin:  # a malformed entry: record its failure under its queue
            job.origin = queue.name
        self.running = (job, queue)
        self._job_in_hand = False
        try:
            super().execute_job(job, queue)
        except REDIS_ERRORS as error:
            self._redis_lost(error)
            log.error(
                "lost Redis while running job %s (%s); if its outcome was not recorded it "
                "is recovered as abandoned once Redis is back",
                job.id,
                _reason(error),
            )
            self.executions.clear()
        finally:
            self.running = None

    def _redis_lost(self, error: Exception) -> None:
        if self.redis_lost_at is None:
            self.redis_lost_at = time.monotonic()
            log.warning(
                "lost Redis at %s (%s); retrying with backoff for up to %d s",
                _address(self.connection),
                _reason(error),
                self.settings.redis_timeout,
            )

    def _redis_back(self) -> None:
        if self.redis_lost_at is not None:
            log.warning(
                "Redis is back after %.1f s; going on", time.monotonic() - self.redis_lost_at
            )
            self.redis_lost_at = None
            # Heartbeats could not be renewed during the outage: give every live worker a
            # maintenance interval to renew its own before calling any job abandoned.
            self.last_cleaned_at = _now()  # type: ignore[assignment]

    def _give_up_past_deadline(self, error: Exception) -> None:
        """Stop the worker once Redis has been away for ``redis_timeout`` and no job runs."""
        lost_at = self.redis_lost_at
        if self.running is not None or lost_at is None:
            return
        if time.monotonic() - lost_at >= self.settings.redis_timeout:
            self.redis_gone = RedisGoneError(self.settings.redis_timeout, error)
            raise StopRequested

    # -- the second signal -------------------------------------------------------------

    def _signal_repeated(self) -> bool:
        """RQ's rule: a pool relays the user's signal, so one within 1 s is the same one."""
        requested = self._shutdown_requested_date
        return requested is not None and _now() - requested < timedelta(seconds=1)


class TaskkitWorker(_Policies, Worker):
    """RQ's forking worker (a work horse per job), with taskkit's policies."""

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

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """RQ's fork, with ``RQ_JOB_ID``/``RQ_WORKER_ID`` set in the horse only.

        RQ sets them in the worker too, for every job: glibc's ``setenv`` never frees
        the string it replaces, so a worker grew by ~100 bytes per job (~100 MB per
        million jobs). Nothing in the worker reads them.
        """
        child_pid = os.fork()
        if child_pid == 0:
            os.environ["RQ_WORKER_ID"] = self.name
            os.environ["RQ_JOB_ID"] = job.id
            os.setpgrp()
            self.main_work_horse(job, queue)
            os._exit(0)  # main_work_horse exits; as RQ, never return into the worker's loop
        self._horse_pid = child_pid
        self.note_horse_beat(job)
        self.procline(f"Forked {child_pid} at {time.time()}")  # type: ignore[no-untyped-call]

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """The work horse: die with the worker, then work the job as RQ does."""
        die_with_parent(self.pid)
        if not job.origin:
            job.origin = queue.name
        super().main_work_horse(job, queue)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        """Say which signal killed the horse (SIGKILL: often the out-of-memory killer)."""
        if ret_val and os.WIFSIGNALED(ret_val):
            name = signal.Signals(os.WTERMSIG(ret_val)).name
            hint = " (the out-of-memory killer sends SIGKILL)" if name == "SIGKILL" else ""
            log.error(
                "the work horse of job %s was killed by %s%s; the job is %s",
                job.id,
                name,
                hint,
                "retried" if job.should_retry else "failed",
            )
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)  # type: ignore[no-untyped-call]

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


class TaskkitSimpleWorker(_Policies, SimpleWorker):
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


class TaskkitSpawnWorker(TaskkitWorker, SpawnWorker):
    """RQ's spawn worker (a fresh interpreter per job), with taskkit's policies.

    A spawned horse is a new interpreter: nothing the worker set up is there, and RQ
    reads the job's data (and may refuse it) before any job code would load jobs.yaml,
    so the job class loads its registry (from ``$TASKKIT_CONFIG``) first.
    """

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """RQ's posix_spawn, without the Redis password on the horse's command line.

        See :mod:`taskkit.spawn`: RQ writes the connection settings into the ``-c``
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
    "fork": TaskkitWorker,
    "simple": TaskkitSimpleWorker,
    "spawn": TaskkitSpawnWorker,
}


def exit_on_stop_signals() -> None:
    """Until a worker starts (see ``_Policies.bootstrap``), SIGTERM/SIGINT exit with 0.

    Loading jobs.yaml and building the app can take seconds; a process manager's stop
    then killed the process by signal. Nothing has been taken or registered yet, so
    leaving at once is safe. Not for a worker pool, whose children inherit handlers.
    """
    signal.signal(signal.SIGTERM, _exit_while_starting)
    signal.signal(signal.SIGINT, _exit_while_starting)


def _exit_while_starting(signum: int, frame: FrameType | None) -> None:
    log.warning("%s while starting: exiting before taking any job", _signal_name(signum))
    raise SystemExit(0)


def interrupted_reason(signum: int) -> str:
    """Why a job stopped by a second signal failed (its failure's text)."""
    return (
        f"worker stopped by a second signal ({_signal_name(signum)}) while this job ran; "
        "the job was interrupted and may have done part of its work"
    )


# -- work horses die with their worker ---------------------------------------------------------


def die_with_parent(parent: int | None) -> None:
    """Make this process (a work horse) die when its worker does.

    An orphaned horse would go on running its job while another worker recovers the job
    as abandoned and runs it again: two runs at once. Linux delivers SIGKILL to the
    horse when the worker dies (PR_SET_PDEATHSIG); elsewhere a thread watches the parent.
    """
    if _PRCTL is not None:
        if _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    elif parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if parent is not None and os.getppid() != parent:  # the worker died before prctl
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)


# -- Redis at start, and the worker pool ---------------------------------------------------------


def wait_for_redis(client: redis.Redis, seconds: int) -> None:
    """Return once Redis answers; raise :class:`RedisGoneError` after ``seconds``.

    A refused password is not an outage: ``redis.AuthenticationError`` is raised at once.
    """
    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            client.ping()
        except redis.AuthenticationError:
            raise
        except REDIS_ERRORS as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RedisGoneError(seconds, error, at_start=True) from None
            if delay == 0.5:
                log.warning(
                    "waiting for Redis at %s (%s), for up to %d s",
                    _address(client),
                    _reason(error),
                    seconds,
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 10.0)
        else:
            return


class TaskkitWorkerPool(WorkerPool):
    """RQ's worker pool, with taskkit's workers; it stops when they give up on Redis.

    Its workers are forked from this process as it is (registry, app, settings). RQ's
    pool would respawn a worker that gave up on Redis, forever.
    """

    redis_gone: RedisGoneError | None = None

    def __init__(self, queues: Any, connection: redis.Redis, **kwargs: Any) -> None:
        super().__init__(queues, connection, **kwargs)
        self.queue_list = _queue_names(queues)

    def get_worker_process(
        self, name: str, burst: bool, _sleep: float = 0, logging_level: str = "INFO"
    ) -> BaseProcess:
        """A forked process that runs one taskkit worker called ``name``."""
        return multiprocessing.get_context("fork").Process(
            target=_run_pool_worker,
            args=(self, name, burst, logging_level),
            name=f"Worker {name} (WorkerPool {self.name})",
        )

    def handle_dead_worker(self, worker_data: WorkerData) -> None:
        """A worker that gave up on Redis stops the pool (the others give up too)."""
        if worker_data.process.exitcode == REDIS_GONE_EXIT and self.redis_gone is None:
            self.redis_gone = RedisGoneError(
                _Policies.settings.redis_timeout, redis.ConnectionError("a pool worker gave up")
            )
            self.status = self.Status.STOPPED
            self.stop_workers()  # type: ignore[no-untyped-call]
        super().handle_dead_worker(worker_data)


def _run_pool_worker(pool: TaskkitWorkerPool, name: str, burst: bool, logging_level: str) -> None:
    """The body of a pool's worker process."""
    try:
        wait_for_redis(pool.connection, _Policies.settings.redis_timeout)
    except RedisGoneError:
        sys.exit(REDIS_GONE_EXIT)
    worker = pool.worker_class(
        pool.queue_list,
        name=name,
        connection=pool.connection,
        serializer=pool.serializer,
        job_class=pool.job_class,
        queue_class=pool.queue_class,
    )
    worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
    if getattr(worker, "redis_gone", None) is not None:
        sys.exit(REDIS_GONE_EXIT)


# -- small helpers -----------------------------------------------------------------------------


def _queue_names(queues: Any) -> list[str]:
    items: Sequence[Any] = [queues] if isinstance(queues, str | Queue) else list(queues or [])
    return [item.name if isinstance(item, Queue) else str(item) for item in items]


def _now() -> datetime:
    return datetime.now(UTC)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _address(client: redis.Redis) -> str:
    """Where ``client`` connects, never with its password: ``host:port/db`` or a socket."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _reason(error: Exception) -> str:
    """The first line of a redis-py error (host and port, never a password)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split(": <redis.", 1)[0].rstrip(".")


__all__ = [
    "REDIS_ERRORS",
    "WORKER_CLASSES",
    "RedisGoneError",
    "TaskkitSimpleWorker",
    "TaskkitSpawnWorker",
    "TaskkitWorker",
    "TaskkitWorkerPool",
    "WorkerStoppedError",
    "die_with_parent",
    "interrupted_reason",
    "recovery_bound",
    "use_settings",
    "wait_for_redis",
    "wake_interval",
]
