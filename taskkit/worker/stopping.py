"""Stopping: signals, the command channel, and a teardown that always completes.

A first SIGTERM/SIGINT lets the current job finish; a stop while the worker starts exits
before it takes a job; a stop is remembered so that no ``except Exception`` on the way can
swallow it; the command channel's thread and RQ's scheduler are waited for a bounded time
(RQ: up to 60 s, or without bound). The second signal is each worker class's own (see
:mod:`.classes`): it interrupts the job and retries or fails it with a reason.
"""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from types import FrameType
from typing import Any

from rq import Queue

from taskkit.worker.base import REDIS_ERRORS, WorkerBase, _now, _reason, _signal_name

log = logging.getLogger("taskkit.worker")

PUBSUB_WAKE = 1.0
"""Seconds the command-channel thread waits for a message before it looks at its stop
flag again (RQ: 60, which a stopping worker could wait out in full)."""


STOP_WAIT = 3.0
"""Seconds a stopping worker waits for its command-channel thread, and for its scheduler
process before killing it."""


class WorkerStoppedError(BaseException):
    """Raised in a simple worker's job when a second signal stops the worker.

    A BaseException, like KeyboardInterrupt, so that a job's ``except Exception`` does
    not swallow it.
    """


class Stopping(WorkerBase):
    """How a worker stops: remembered, bounded, and never in the middle of its teardown."""

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
        if self._tearing_down:  # RQ would raise StopRequested out of its own teardown
            log.info("%s: already stopping", _signal_name(signum))
            return
        running = self.running[0].id if self.running is not None else None
        if running is not None or self._job_in_hand:
            log.info(
                "%s: stopping after the current job%s",
                _signal_name(signum),
                f" ({running})" if running else "",
            )
        else:
            log.info("%s: stopping", _signal_name(signum))
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

    def reorder_queues(self, reference_queue: Queue) -> None:
        """RQ's; RQ calls it right after it took a job off ``reference_queue``."""
        self._job_in_hand = True
        super().reorder_queues(reference_queue)

    def teardown(self) -> None:
        """RQ's teardown; without Redis the worker's death cannot be recorded, and is logged.

        A stop signal from here on is noted only: RQ's handler raised StopRequested in the
        middle of the teardown (a burst worker that was finishing), which skipped the
        deregistration and ended the command with an error.
        """
        self._tearing_down = True
        try:
            super().teardown()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS as error:
            log.warning("could not record this worker's exit in Redis (%s)", _reason(error))
        if not self.is_horse:
            log.info("worker %s stopped", self.name)

    def _signal_repeated(self) -> bool:
        """RQ's rule: a pool relays the user's signal, so one within 1 s is the same one."""
        requested = self._shutdown_requested_date
        return requested is not None and _now() - requested < timedelta(seconds=1)


def exit_on_stop_signals() -> None:
    """Until a worker starts (see :meth:`Stopping.bootstrap`), SIGTERM/SIGINT exit with 0.

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
