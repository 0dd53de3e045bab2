"""The contract between taskkit and the RQ it runs on: every internal of RQ's it relies on.

taskkit's workers bend RQ's loop where RQ loses time or jobs (see the docstrings of each
override). Those bends rely on RQ's methods, private attributes and, in a few places, on
code copied from RQ. An RQ release can move any of them silently: an override of a
method RQ no longer calls is never called, a renamed attribute is read as missing. This
module lists each one and checks it against the installed rq, so an upgrade fails here,
by name, instead of in a fault test or in production.

When a test here fails after an RQ upgrade: read the change in RQ's source, adapt the
override (or drop it, if RQ now does the right thing), update the table and the rq
version the entry was checked against.

Checked against rq 3.0.0.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.worker.worker_classes import SpawnWorker

import taskkit

RQ_PACKAGES = ("rq", "rq_scheduler")

# Every method or attribute of an RQ class that a taskkit class overrides, with the
# parameters RQ's has (names and kinds; "*name"/"**name" for varargs). A property or plain
# attribute has None.
OVERRIDES: dict[tuple[str, str], str | None] = {
    ("rq.job.Job", "_deserialize_data"): "self",
    # taskkit.workflows.steps: a fan-in's check reads one pending upstream job, not all.
    ("rq.job.Job", "dependencies_are_met"): (
        "self, parent_job=, pipeline=, exclude_job_id=, refresh_job_status="
    ),
    ("rq.job.Job", "exc_info"): None,
    ("rq.job.Job", "fetch"): "cls, id, connection=, serializer=",
    ("rq.job.Job", "fetch_many"): "cls, job_ids, connection, serializer=",
    ("rq.job.Job", "failure_callback"): None,
    ("rq.job.Job", "func"): None,
    ("rq.job.Job", "get_retry_interval"): "self",
    ("rq.job.Job", "get_status"): "self, refresh=",
    ("rq.job.Job", "refresh"): "self",
    ("rq.job.Job", "restore"): "self, raw_data",
    ("rq.job.Job", "result"): None,
    ("rq.job.Job", "return_value"): "self, refresh=",
    ("rq.job.Job", "should_retry"): None,
    ("rq.job.Job", "stopped_callback"): None,
    ("rq.job.Job", "success_callback"): None,
    ("rq.queue.Queue", "lmove"): "cls, connection, queue_key, timeout",
    ("rq.queue.Queue", "lpop"): "cls, queue_keys, timeout, connection=",
    # taskkit.worker.rq_scheduler: due entries that are no job id are removed, not read.
    ("rq.registry.ScheduledJobRegistry", "get_jobs_to_schedule"): (
        "self, timestamp=, chunk_size="
    ),
    ("rq.scheduler.RQScheduler", "enqueue_scheduled_jobs"): "self",
    ("rq.scheduler.RQScheduler", "prepare_registries"): "self, queue_names=",
    ("rq.scheduler.RQScheduler", "start"): "self",
    ("rq.scheduler.RQScheduler", "work"): "self",
    ("rq.worker.base.BaseWorker", "_start_scheduler"): (
        "self, burst=, logging_level=, date_format=, log_format="
    ),
    ("rq.worker.base.BaseWorker", "bootstrap"): "self, logging_level=, date_format=, log_format=",
    ("rq.worker.base.BaseWorker", "check_for_suspension"): "self, burst",
    ("rq.worker.base.BaseWorker", "clean_registries"): "self",
    ("rq.worker.base.BaseWorker", "dequeue_job_and_maintain_ttl"): "self, timeout, max_idle_time=",
    ("rq.worker.base.BaseWorker", "dequeue_timeout"): None,
    ("rq.worker.base.BaseWorker", "execute_job"): "self, job, queue",
    ("rq.worker.base.BaseWorker", "get_heartbeat_ttl"): "self, job, working_time=",
    ("rq.worker.base.BaseWorker", "handle_exception"): "self, job, *exc_info",
    ("rq.worker.base.BaseWorker", "handle_job_failure"): (
        "self, job, queue, started_job_registry=, exc_string=, execution="
    ),
    ("rq.worker.base.BaseWorker", "handle_job_retry"): (
        "self, job, queue, retry, started_job_registry, execution"
    ),
    ("rq.worker.base.BaseWorker", "handle_job_success"): (
        "self, job, queue, started_job_registry, execution"
    ),
    ("rq.worker.base.BaseWorker", "handle_work_horse_killed"): "self, job, retpid, ret_val, rusage",
    ("rq.worker.base.BaseWorker", "increment_failed_job_count"): "self, pipeline=",
    ("rq.worker.base.BaseWorker", "heartbeat"): "self, timeout=, pipeline=",
    # worker.metering.Metering: RQ calls exactly one of these per ended job, in its pipeline.
    ("rq.worker.base.BaseWorker", "increment_successful_job_count"): "self, pipeline=",
    ("rq.worker.base.BaseWorker", "main_work_horse"): "self, job, queue",
    ("rq.worker.base.BaseWorker", "maintain_heartbeats"): "self, job, execution",
    ("rq.worker.base.BaseWorker", "max_connection_wait_time"): None,
    # taskkit.worker.tracing.Tracing: the job runs inside its consumer span.
    ("rq.worker.base.BaseWorker", "perform_job"): "self, job, queue, execution",
    ("rq.worker.base.BaseWorker", "reorder_queues"): "self, reference_queue",
    ("rq.worker.base.BaseWorker", "request_force_stop"): "self, signum, frame",
    ("rq.worker.base.BaseWorker", "request_stop"): "self, signum, frame",
    ("rq.worker.base.BaseWorker", "run_maintenance_tasks"): "self",
    ("rq.worker.base.BaseWorker", "set_state"): "self, state, pipeline=",
    ("rq.worker.base.BaseWorker", "stop_scheduler"): "self",
    ("rq.worker.base.BaseWorker", "subscribe"): "self",
    ("rq.worker.base.BaseWorker", "teardown"): "self",
    ("rq.worker.base.BaseWorker", "unsubscribe"): "self",
    ("rq.worker.worker_classes.SimpleWorker", "execute_job"): "self, job, queue",
    ("rq.worker.worker_classes.SimpleWorker", "get_heartbeat_ttl"): "self, job, working_time=",
    ("rq.worker.worker_classes.SpawnWorker", "bootstrap"): (
        "self, logging_level=, date_format=, log_format="
    ),
    ("rq.worker.worker_classes.SpawnWorker", "fork_work_horse"): "self, job, queue",
    ("rq.worker.worker_classes.Worker", "execute_job"): "self, job, queue",
    ("rq.worker.worker_classes.Worker", "fork_work_horse"): "self, job, queue",
    ("rq.worker_pool.WorkerPool", "get_worker_process"): (
        "self, name, burst, _sleep=, logging_level="
    ),
    ("rq.worker_pool.WorkerPool", "handle_dead_worker"): "self, worker_data",
}

# Every private attribute or method of RQ's that taskkit reads, writes or calls, and an
# object of RQ's (built by the ``rq_objects`` fixture) that must have it.
PRIVATE: dict[str, str] = {
    # taskkit.progress: get_current_job() in eager mode, as Job.perform sets it.
    "_current_job": "job_module",
    "_deserialize_data": "job",
    "_dump_worker_config": "spawn_worker",
    "_exc_handlers": "worker",
    "_exc_info": "job",
    "_failure_callback_name": "job",
    "_func_name": "job",
    "_horse_pid": "worker",
    "_job": "execution",
    "_ordered_queues": "worker",
    "_process": "scheduler",
    "_pubsub_exception_handler": "worker",
    "_result": "job",
    "_scheduled_job_registries": "scheduler",
    "_serializer_arg": "worker",
    "_shutdown_requested_date": "worker",
    "_start_scheduler": "worker",
    # taskkit.metrics: a job stopped on request (rq job stop) is failed, never retried.
    "_stopped_job_id": "worker",
    "_state": "worker",
    "_status": "job",
    "_stop_requested": "worker",
    "_stopped_callback_name": "job",
    "_success_callback_name": "job",
}

# taskkit's own private names that RQ happens to use too (not RQ's internals).
OWN_NAMES = {"_connection", "_exit", "_get_current_object", "_key"}

# RQ code that taskkit carries a changed copy of, with a digest of RQ's source: when RQ
# changes it, re-read the change and carry it into taskkit's copy, then update the digest.
COPIED: dict[str, str] = {
    # taskkit's _start_scheduler: RQ's, with TaskkitScheduler.
    "rq.worker.base.BaseWorker._start_scheduler": "49c229109608aa31",
    # taskkit's subscribe: RQ's, with a 1 s wait in the listener thread.
    "rq.worker.base.BaseWorker.subscribe": "3437c20bb267958f",
    # taskkit's stop_scheduler: RQ's, with a bounded join and a kill.
    "rq.worker.base.BaseWorker.stop_scheduler": "b90d9019bcaf7b95",
    # taskkit's fork_work_horse: RQ's, with the job's variables set in the horse only.
    "rq.worker.worker_classes.Worker.fork_work_horse": "18679b6c0638d279",
    # taskkit.worker.spawn: RQ's posix_spawn of a horse, without the password on its argv.
    "rq.worker.worker_classes.SpawnWorker.fork_work_horse": "b88806a955f5cbf4",
    # taskkit's _run_pool_worker: RQ's pool worker body, with taskkit's Redis wait.
    "rq.worker_pool.run_worker": "13053f7a854db475",
    "rq.worker_pool.WorkerPool.get_worker_process": "f1985a4efe4f7917",
    # taskkit's scheduled registry and scheduler: RQ's, skipping entries that are no job id.
    "rq.registry.ScheduledJobRegistry.get_jobs_to_schedule": "9fea86bec1b659e2",
    "rq.scheduler.RQScheduler.prepare_registries": "bb13c347fbd12071",
}

# Functions and names from RQ's modules other than its documented API.
IMPORTED = [
    "rq.connections:get_connection_kwargs",
    "rq.defaults:DEFAULT_LOGGING_DATE_FORMAT",
    "rq.defaults:DEFAULT_LOGGING_FORMAT",
    "rq.job_lifecycle:call_exception_handlers",
    "rq.job_lifecycle:format_exc_info",
    "rq.intermediate_queue:IntermediateQueue",
    "rq.registry:clean_registries",
    "rq.utils:current_timestamp",
    "rq.utils:now",
    "rq.utils:utcformat",
    "rq.worker_pool:WorkerData",
    "rq.worker_registration:clean_worker_registry",
    "rq.worker_registration:register",
    "rq_scheduler:Scheduler",
]

# Attributes of RQ's public objects that taskkit uses and RQ's documentation does not show.
QUEUE_ATTRIBUTES = ["intermediate_queue", "registry_cleaning_key", "started_job_registry"]


def _rq_class(cls: type) -> bool:
    return cls.__module__.split(".")[0] in RQ_PACKAGES


def taskkit_classes() -> list[type]:
    """Every class defined in taskkit that derives from one of RQ's or rq-scheduler's."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(taskkit.__path__, "taskkit."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__.startswith("taskkit")
                and any(_rq_class(base) for base in value.__mro__[1:])
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def overrides() -> dict[tuple[str, str], Any]:
    """(RQ class, name) -> RQ's member, for every member a taskkit class overrides.

    A member defined by a taskkit class (a worker class or one of the classes it mixes
    in) overrides the first RQ class after it, in the MRO of every taskkit class using it.
    """
    found: dict[tuple[str, str], Any] = {}
    for cls in taskkit_classes():
        mro = cls.__mro__
        for index, defining in enumerate(mro):
            if _rq_class(defining) or defining is object:
                continue
            for name in vars(defining):
                if name.startswith("__"):
                    continue
                later = mro[index + 1 :]
                owner = next((b for b in later if _rq_class(b) and name in vars(b)), None)
                if owner is not None:
                    found[(f"{owner.__module__}.{owner.__qualname__}", name)] = vars(owner)[name]
    return found


def parameters(member: Any) -> str | None:
    """``member``'s parameters as OVERRIDES writes them; None for properties and values."""
    function = getattr(member, "__func__", member)
    if not inspect.isfunction(function):
        return None
    shown = []
    for parameter in inspect.signature(function).parameters.values():
        prefix = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(
            parameter.kind, ""
        )
        default = "=" if parameter.default is not parameter.empty else ""
        shown.append(f"{prefix}{parameter.name}{default}")
    return ", ".join(shown)


def resolve(dotted: str) -> Any:
    """``rq.module.Class.attr`` or ``rq.module.func`` -> the object."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            value = getattr(value, part)
        return value
    raise ImportError(dotted)


@pytest.fixture
def rq_objects(redis_conn: redis.Redis) -> dict[str, Any]:
    """One of each RQ object whose private attributes taskkit uses (built, never run)."""
    queue = Queue("contract", connection=redis_conn)
    job = Job.create(func=print, args=("x",), connection=redis_conn)
    worker = Worker([queue], connection=redis_conn)
    return {
        "job": job,
        "worker": worker,
        "spawn_worker": SpawnWorker([queue], connection=redis_conn),
        "scheduler": RQScheduler([queue], connection=redis_conn),
        "execution": Execution("contract", job.id, connection=redis_conn),
        "queue": queue,
        "job_module": importlib.import_module("rq.job"),
    }


@pytest.mark.parametrize(("owner", "name"), sorted(OVERRIDES))
def test_every_overridden_member_still_exists_with_its_parameters(owner: str, name: str) -> None:
    cls = resolve(owner)
    assert name in vars(cls), (
        f"rq no longer defines {owner}.{name}, which taskkit overrides: its override is "
        "never called. Read rq's change and move the override to what replaced it."
    )
    expected = OVERRIDES[(owner, name)]
    assert parameters(vars(cls)[name]) == expected, (
        f"{owner}.{name} changed its parameters in rq; taskkit's override was written "
        f"for ({expected}). Read rq's change and adapt the override."
    )


def test_every_override_is_listed() -> None:
    """A new override of an RQ member must come with its line in OVERRIDES."""
    unlisted = sorted(set(overrides()) - set(OVERRIDES))
    assert not unlisted, f"overrides of rq missing from OVERRIDES: {unlisted}"
    gone = sorted(set(OVERRIDES) - set(overrides()))
    assert not gone, f"OVERRIDES lists members taskkit no longer overrides: {gone}"


@pytest.mark.parametrize("name", sorted(PRIVATE))
def test_every_private_attribute_exists_in_rq(name: str, rq_objects: dict[str, Any]) -> None:
    owner = PRIVATE[name]
    assert hasattr(rq_objects[owner], name), (
        f"rq's {type(rq_objects[owner]).__name__} has no {name} any more; taskkit uses it "
        "(grep taskkit/ for it) and must be adapted to rq's change."
    )


def test_every_private_attribute_of_rq_that_taskkit_touches_is_listed() -> None:
    """Scans taskkit's source for ``._name`` uses that rq's source uses too."""
    rq_source = Path(inspect.getfile(Queue)).parent
    rq_names: set[str] = set()
    for path in rq_source.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        rq_names |= set(re.findall(r"\.(_[a-z]\w*)", text))
        rq_names |= set(re.findall(r"def (_[a-z]\w*)", text))
    used: set[str] = set()
    for path in Path(taskkit.__file__).parent.rglob("*.py"):
        used |= set(re.findall(r"\.(_[a-z]\w*)", path.read_text(encoding="utf-8")))
    unlisted = sorted((used & rq_names) - set(PRIVATE) - OWN_NAMES)
    assert not unlisted, f"rq internals used by taskkit but missing from PRIVATE: {unlisted}"


@pytest.mark.parametrize("dotted", sorted(COPIED))
def test_code_copied_from_rq_is_unchanged_there(dotted: str) -> None:
    source = inspect.getsource(resolve(dotted))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == COPIED[dotted], (
        f"rq changed {dotted}, which taskkit carries a copy of: read the change, carry it "
        f"into taskkit's copy, then set its digest to {digest!r}."
    )


@pytest.mark.parametrize("spec", IMPORTED)
def test_names_imported_from_rq_modules_exist(spec: str) -> None:
    module, name = spec.split(":")
    assert hasattr(importlib.import_module(module), name), f"rq no longer has {spec}"


@pytest.mark.parametrize("name", QUEUE_ATTRIBUTES)
def test_queue_attributes_taskkit_uses_exist(name: str, rq_objects: dict[str, Any]) -> None:
    assert hasattr(rq_objects["queue"], name), f"rq's Queue has no {name} any more"
