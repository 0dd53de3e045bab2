"""The worker side: RQ's workers running only declared jobs, in their context, bent where
RQ loses time or jobs. The one place that touches RQ's internals (see
``tests/test_rq_contract.py`` for the list, and each module's docstring for why).

- :mod:`.job`: the job class that runs only what jobs.yaml declares;
- :mod:`.joblog`: the one log line per job;
- :mod:`.queue`: queue entries that are no job id;
- :mod:`.base`: what every bend shares; :mod:`.recovery`, :mod:`.outages`,
  :mod:`.stopping`, :mod:`.retries`, :mod:`.horses`, :mod:`.rq_scheduler`,
  :mod:`.pausing`, :mod:`.rate_limits`: the bends,
  one concern each; :mod:`.spawn`: starting a spawn horse without secrets on its argv;
- :mod:`.classes`: the ``fork``, ``simple`` and ``spawn`` workers; :mod:`.pool`: the pool;
- :mod:`.run`: running them from the command line.
"""

from taskkit.worker.base import REDIS_ERRORS as REDIS_ERRORS
from taskkit.worker.classes import WORKER_CLASSES as WORKER_CLASSES
from taskkit.worker.classes import TaskkitForkWorker as TaskkitForkWorker
from taskkit.worker.classes import TaskkitSimpleWorker as TaskkitSimpleWorker
from taskkit.worker.classes import TaskkitSpawnWorker as TaskkitSpawnWorker
from taskkit.worker.classes import WorkerClassName as WorkerClassName
from taskkit.worker.horses import die_with_parent as die_with_parent
from taskkit.worker.job import TaskkitJob as TaskkitJob
from taskkit.worker.outages import RedisGoneError as RedisGoneError
from taskkit.worker.outages import wait_for_redis as wait_for_redis
from taskkit.worker.pool import TaskkitWorkerPool as TaskkitWorkerPool
from taskkit.worker.queue import TaskkitQueue as TaskkitQueue
from taskkit.worker.recovery import recovery_bound as recovery_bound
from taskkit.worker.recovery import wake_interval as wake_interval
from taskkit.worker.retries import RETRIED_COUNT_FIELD as RETRIED_COUNT_FIELD
from taskkit.worker.run import make_worker as make_worker
from taskkit.worker.run import prepare_process as prepare_process
from taskkit.worker.run import run_worker as run_worker
from taskkit.worker.stopping import exit_on_stop_signals as exit_on_stop_signals

__all__ = [
    "REDIS_ERRORS",
    "RETRIED_COUNT_FIELD",
    "WORKER_CLASSES",
    "RedisGoneError",
    "TaskkitForkWorker",
    "TaskkitJob",
    "TaskkitQueue",
    "TaskkitSimpleWorker",
    "TaskkitSpawnWorker",
    "TaskkitWorkerPool",
    "WorkerClassName",
    "die_with_parent",
    "exit_on_stop_signals",
    "make_worker",
    "prepare_process",
    "recovery_bound",
    "run_worker",
    "wait_for_redis",
    "wake_interval",
]
