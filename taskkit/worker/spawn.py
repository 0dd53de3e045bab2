"""Starting a ``spawn`` work horse without putting the Redis password on its command line.

RQ's ``SpawnWorker`` starts each horse as ``python -c SOURCE`` with the worker's Redis
connection settings written into SOURCE, password included: ``ps`` shows them to every
user of the machine for as long as the job runs. It also sets ``RQ_JOB_ID`` in the
worker's own environment for every job (glibc's ``setenv`` never frees the value it
replaces), and cannot rebuild a Sentinel-managed connection at all.

Here the command line holds only what is not secret (the worker's key, the job id, the
queue name, RQ's pickled horse settings); the connection settings travel in the horse's
environment, which only its own user (and root) can read (``/proc/PID/environ``),
built for the spawn call alone; the horse removes it from ``os.environ`` so that the
job's own subprocesses do not inherit it. A Sentinel-managed worker's horse connects as
jobs.yaml says (through ``$TASKKIT_CONFIG`` and ``$TASKKIT_REDIS_URL``), as the worker
itself did.
"""

from __future__ import annotations

import base64
import os
import pickle
import sys
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool
from rq.connections import get_connection_kwargs
from rq.executions import Execution

if TYPE_CHECKING:
    from rq.job import Job
    from rq.queue import Queue
    from rq.worker.worker_classes import SpawnWorker

CONNECTION_VARIABLE = "TASKKIT_HORSE_REDIS"
"""The horse's environment variable with the worker's connection settings (pickled)."""

_SOURCE = """\
import sys
sys.path[:] = {path!r}
from taskkit.worker.spawn import run_horse
run_horse({settings!r}, {worker_key!r}, {job_id!r}, {queue_name!r}, {serializer!r})
"""


def spawn_horse(worker: SpawnWorker, job: Job, queue: Queue) -> int:
    """Start the work horse for ``job`` as a fresh interpreter; its pid."""
    env = {
        **os.environ,
        "RQ_WORKER_ID": worker.name,
        "RQ_JOB_ID": job.id,
        "RQ_EXECUTION_ID": worker.execution.id,  # type: ignore[union-attr]
    }
    connection = _encoded(connection_settings(worker.connection))
    if connection is not None:
        env[CONNECTION_VARIABLE] = connection
    source = _SOURCE.format(
        path=sys.path,
        settings=worker._dump_worker_config(),
        worker_key=worker.key,
        job_id=job.id,
        queue_name=queue.name,
        serializer=worker._serializer_arg,
    )
    # setpgroup=0: the horse gets its own process group before any of its code runs (RQ's).
    return os.posix_spawn(sys.executable, [sys.executable, "-c", source], env, setpgroup=0)


def connection_settings(client: Redis) -> dict[str, Any] | None:
    """What ``Redis(**settings)`` needs to reach the same server; None under Sentinel."""
    if isinstance(client.connection_pool, SentinelConnectionPool):
        return None
    settings = dict(get_connection_kwargs(client))
    if "path" in settings:
        settings["unix_socket_path"] = settings.pop("path")
    if issubclass(client.connection_pool.connection_class, SSLConnection):
        settings["ssl"] = True  # Redis() builds an SSLConnection only when told
    # Not picklable, and rebuilt by Redis() with its defaults anyway.
    settings.pop("retry", None)
    settings.pop("driver_info", None)
    return settings


def _encoded(settings: dict[str, Any] | None) -> str | None:
    """The settings for the horse's environment; None if they cannot be pickled (a
    client built with a credential provider or a callback): the horse then connects as
    jobs.yaml says, as under Sentinel, instead of the worker failing its job."""
    if settings is None:
        return None
    try:
        return base64.b64encode(pickle.dumps(settings)).decode()
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def run_horse(
    settings: bytes, worker_key: str, job_id: str, queue_name: str, serializer: str | None
) -> None:
    """The spawned horse: rebuild the worker, its job and queue, then work the job."""
    worker_class, attributes = pickle.loads(settings)  # written by our worker
    worker = worker_class.find_by_key(
        worker_key,
        connection=_connection(attributes["job_class"]),
        job_class=attributes["job_class"],
        queue_class=attributes["queue_class"],
        serializer=serializer,
    )
    if not worker:
        sys.exit(1)
    for name, value in attributes.items():
        setattr(worker, name, value)
    job = worker.job_class.fetch(job_id, connection=worker.connection, serializer=worker.serializer)
    queue = worker.queue_class(
        queue_name,
        connection=worker.connection,
        job_class=worker.job_class,
        serializer=worker.serializer,
        death_penalty_class=worker.death_penalty_class,
    )
    execution = Execution.fetch(os.environ["RQ_EXECUTION_ID"], job.id, connection=worker.connection)
    execution._job = job
    worker.execution = execution
    worker.main_work_horse(job, queue)


def _connection(job_class: Any) -> Redis:
    encoded = os.environ.pop(CONNECTION_VARIABLE, None)
    if encoded is not None:  # not left for the job's own subprocesses to inherit
        return Redis(**pickle.loads(base64.b64decode(encoded)))
    return job_class.worker_registry().connection  # type: ignore[no-any-return]


__all__ = ["CONNECTION_VARIABLE", "connection_settings", "run_horse", "spawn_horse"]
