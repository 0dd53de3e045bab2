"""Redis outages, and the heartbeat: a worker waits Redis out instead of quitting.

RQ ends a worker at the first Redis error in many places (its state, the suspension
check, recording a job's outcome). Here the worker notes the outage, retries with backoff
and gives up with one clear error only after ``redis_timeout`` seconds without Redis. The
heartbeat is also where a worker saves round trips: RQ sends three commands one by one,
several times per job; here they go in one pipeline, at most once a second.
"""

from __future__ import annotations

import logging
import time

import redis
from redis.client import Pipeline
from rq import Queue
from rq.exceptions import StopRequested
from rq.job import Job

from taskkit.worker.base import REDIS_ERRORS, WorkerBase, _address, _now, _reason

log = logging.getLogger("taskkit.worker")

BEAT_EVERY = 1.0
"""Seconds within which a worker's repeated heartbeat, and ``rq suspend`` check, are
skipped: RQ makes each once or more per job, a Redis round trip or three each time."""


MIN_SKIPPED_TTL = 15


class RedisGoneError(Exception):
    """Redis did not answer for ``redis_timeout`` seconds; the worker stopped."""

    def __init__(self, seconds: int, last_error: Exception, *, at_start: bool = False) -> None:
        super().__init__(f"no answer from Redis for {seconds} s")
        self.seconds = seconds
        self.last_error = last_error
        self.at_start = at_start


class Outages(WorkerBase):
    """A worker that outlasts Redis outages, and beats in one round trip."""

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
            with self._quitting_on_error():
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
