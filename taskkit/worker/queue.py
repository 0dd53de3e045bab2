"""Queue entries that are no job id: dropped and logged, never the end of a worker."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import redis
from rq import Queue
from rq.intermediate_queue import IntermediateQueue

from taskkit.logs import escape_controls

log = logging.getLogger("taskkit.worker")

JOB_ID = re.compile(r"[A-Za-z0-9_-]+")
"""What RQ accepts as a job id (``rq.job.JOB_ID_PATTERN``); it raises on anything else."""


def is_job_id(entry: object) -> bool:
    """Whether a queue or registry entry (bytes or text) is an id RQ can build a job for."""
    if isinstance(entry, bytes):
        try:
            entry = entry.decode()
        except UnicodeDecodeError:
            return False
    return isinstance(entry, str) and JOB_ID.fullmatch(entry) is not None


def shown(entry: object) -> str:
    """A queue entry as a log may show it: quoted, control characters and bytes escaped,
    and no longer than a line should be."""
    text = repr(entry.decode(errors="backslashreplace") if isinstance(entry, bytes) else entry)
    return escape_controls(text if len(text) <= 120 else text[:117] + "...")


class TaskkitQueue(Queue):
    """RQ's queue, as a worker takes jobs off it: an entry that is no job id is dropped.

    RQ builds a Job from every entry it pops and lets the error of an invalid id (a dot,
    a space, a newline, bytes that are not UTF-8) out of the dequeue: the worker quit with
    status 0 and the jobs behind the entry never ran. No RQ producer can have written
    such an entry, so it is logged and removed, and the worker takes the next one; nothing
    changes for a valid id (no extra Redis command).
    """

    @classmethod
    def lpop(
        cls, queue_keys: Sequence[str], timeout: int | None, connection: redis.Redis | None = None
    ) -> Any:
        """RQ's LPOP/BLPOP over several queues, skipping entries that are no job id."""
        while True:
            popped = super().lpop(queue_keys, timeout, connection=connection)
            if popped is None or is_job_id(popped[1]):
                return popped
            _log_dropped_entry(popped)

    @classmethod
    def lmove(cls, connection: redis.Redis, queue_key: str, timeout: int | None) -> Any:
        """RQ's LMOVE of one queue's entry to its intermediate list, skipping (and removing
        from that list) entries that are no job id."""
        while True:
            moved = super().lmove(connection, queue_key, timeout)
            if moved is None or is_job_id(moved[1]):
                return moved
            intermediate = IntermediateQueue.get_intermediate_queue_key(queue_key)
            connection.lrem(intermediate, 1, moved[1])
            _log_dropped_entry(moved)


def _log_dropped_entry(popped: tuple[Any, Any]) -> None:
    queue_key, entry = popped
    name = queue_key.decode(errors="replace") if isinstance(queue_key, bytes) else queue_key
    log.error(
        "removed the entry %s from %s: it is not a job id (RQ ids are letters, digits, '_' "
        "and '-'); a producer wrote garbage to the queue",
        shown(entry),
        escape_controls(name),
    )
