"""enqueue_many: the jobs RQ's own enqueue writes, from one template per job name."""

from __future__ import annotations

import dataclasses
import inspect
import zlib
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from worker_support import PICKLE_PROBE_JOBS, PROBE_JOBS

from taskkit import JobArgumentsError, Registry, UnknownJobError
from taskkit.bulk import PER_JOB_FIELDS, Plan
from taskkit.redaction import describe_call
from taskkit.testing import run_burst_worker

# (name, args, kwargs): a declared description, a retry policy, secrets to hide in the
# description, nested data, another queue, no arguments at all.
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("send_payment_receipt", (1,), {"payment_id": 7}),
    ("fail_then_mark", ("marker-a",), {}),
    ("echo", ("x", [1, {"password": "pw-1"}]), {"token": "t0k3n", "n": {"a": None}}),
    ("critical_report", (), {}),
    ("noop", (), {}),
    ("fail_app", (), {"reason": "é ünïcode"}),
]
TIMESTAMPS = {"created_at", "enqueued_at"}


def raw_hash(conn: redis.Redis, job: Job) -> dict[str, bytes]:
    return {key.decode(): value for key, value in conn.hgetall(job.key).items()}


@pytest.mark.parametrize("taskkit_config_path", [PROBE_JOBS, PICKLE_PROBE_JOBS])
def test_each_hash_is_the_one_enqueue_writes_field_for_field(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    singles = [taskkit_registry.enqueue(name, *args, **kwargs) for name, args, kwargs in CALLS]
    many = taskkit_registry.enqueue_many(CALLS * 2)

    for single, bulk in zip(singles * 2, many, strict=True):
        reference, stored = raw_hash(redis_conn, single), raw_hash(redis_conn, bulk)
        assert set(stored) == set(reference), single.description
        for field in set(reference) - TIMESTAMPS:
            assert stored[field] == reference[field], (single.description, field)
        for field in TIMESTAMPS:  # RQ's format, parsed back by RQ
            assert len(stored[field]) == len(reference[field]) == 27, field
    assert set(PER_JOB_FIELDS) <= set(reference)
    assert zlib.decompress(stored["data"]) == zlib.decompress(reference["data"])
    assert len({job.id for job in singles + many}) == len(singles + many)


def test_fetched_jobs_read_as_those_of_enqueue(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    singles = [taskkit_registry.enqueue(name, *args, **kwargs) for name, args, kwargs in CALLS]
    many = taskkit_registry.enqueue_many(CALLS)
    serializer = taskkit_registry.serializer

    attributes = [
        *("func_name", "args", "kwargs", "description", "meta", "origin", "timeout"),
        *("result_ttl", "failure_ttl", "ttl", "retries_left", "retry_intervals"),
        *("enqueue_at_front_on_retry", "group_id"),
    ]
    for single, bulk in zip(singles, many, strict=True):
        fetched = Job.fetch(bulk.id, connection=redis_conn, serializer=serializer)
        reference = Job.fetch(single.id, connection=redis_conn, serializer=serializer)
        for name in attributes:
            assert getattr(fetched, name) == getattr(reference, name), name
            assert getattr(bulk, name) == getattr(single, name), f"returned job: {name}"
        assert fetched.get_status() == JobStatus.QUEUED
        assert fetched.created_at <= fetched.enqueued_at
    assert "t0k3n" not in many[2].description and "pw-1" not in many[2].description
    assert many[2].description == "echo('x', [1, {'password': '***'}], token='***', n={'a': None})"


def test_returned_jobs_are_plain_rq_jobs_with_nothing_shared(
    taskkit_registry: Registry,
) -> None:
    first, second = taskkit_registry.enqueue_many([CALLS[1], CALLS[1]])

    assert type(first) is Job and type(second) is Job
    assert first.id != second.id
    assert first.get_status(refresh=False) == first.get_status() == JobStatus.QUEUED
    assert first.enqueued_at is not None and first.redis_server_version is not None
    first.meta["note"] = "mine"
    first.retry_intervals.append(99)  # type: ignore[union-attr]
    assert second.meta == {"taskkit_job": "fail_then_mark"}
    assert second.retry_intervals == [1]
    again = taskkit_registry.enqueue_many([CALLS[1]])[0]
    assert (again.meta, again.retry_intervals) == ({"taskkit_job": "fail_then_mark"}, [1])
    first.save_meta()  # a returned job works like any other
    fetched = Job.fetch(
        first.id, connection=taskkit_registry.connection, serializer=taskkit_registry.serializer
    )
    assert fetched.meta["note"] == "mine"


def test_jobs_land_in_their_queues_in_call_order_and_run(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    calls = [("echo", (n,), {}) for n in range(5)] + [("critical_report", (), {})]
    calls += [("echo", (), {"n": n}) for n in range(5, 8)]
    many = taskkit_registry.enqueue_many(calls)

    assert Queue("default", connection=redis_conn).job_ids == [
        j.id for j in many if j.origin == "default"
    ]
    assert Queue("critical", connection=redis_conn).job_ids == [many[5].id]
    assert set(redis_conn.smembers("rq:queues")) == {b"rq:queue:default", b"rq:queue:critical"}
    assert run_burst_worker(taskkit_registry).finished == 9
    assert [j.return_value()["args"] for j in many[:2]] == [["0"], ["1"]]
    assert many[-1].return_value()["kwargs"] == {"n": "7"}


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (("echo", (object(),), {}), "argument 1 (object) cannot be sent as JSON"),
        (("echo", (), {"when": {1, 2}}), "argument 'when' (set) cannot be sent as JSON"),
        (("fail_app", (), {"why": 1}), "unexpected keyword 'why'"),
        (("fail_app", (1, 2), {}), "too many positional arguments"),
    ],
)
def test_one_bad_call_anywhere_enqueues_nothing(
    taskkit_registry: Registry,
    redis_conn: redis.Redis,
    bad: tuple[str, tuple[Any, ...], dict[str, Any]],
    expected: str,
) -> None:
    good = [("fail_app", ("ok",), {}), ("echo", (1,), {"when": 2})] * 50
    taskkit_registry.enqueue_many(good[:2])  # the good shapes are known (cached) already
    redis_conn.flushdb()

    with pytest.raises(JobArgumentsError) as caught:
        taskkit_registry.enqueue_many([*good, bad, *good])
    assert f"job {bad[0]!r}" in str(caught.value)
    assert expected in str(caught.value)
    with pytest.raises(UnknownJobError):
        taskkit_registry.enqueue_many([*good, ("nope", (), {})])
    assert redis_conn.dbsize() == 0


def test_round_trips_do_not_grow_with_the_batch(taskkit_registry: Registry, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    sends = [0]
    real = client.connection_pool.get_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        sends[0] += 1
        return real(*args, **kwargs)

    client.connection_pool.get_connection = counting  # type: ignore[method-assign]
    taskkit_registry.connection = client
    taskkit_registry.enqueue_many(CALLS)  # warm up: the server version, per queue
    for size in (1, 10, 300):
        before = sends[0]
        taskkit_registry.enqueue_many(CALLS * size)
        assert sends[0] - before == 1, size
    client.close()


def test_a_new_connection_gets_new_templates(
    taskkit_registry: Registry, redis_url: str, redis_conn: redis.Redis
) -> None:
    taskkit_registry.enqueue_many([("noop", (), {})])
    other = redis.Redis.from_url(redis_url)
    taskkit_registry.connection = other
    job = taskkit_registry.enqueue_many([("noop", (), {})])[0]
    assert job.connection is other
    assert Queue("default", connection=redis_conn).count == 2
    other.close()


def _keywords(user_id: int, *, api_key: str = "", **extra: Any) -> None: ...


def _varargs(first: Any, *secrets: Any, token: Any = None) -> None: ...


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (_keywords, (1,), {"api_key": "k", "password": "p", "other": [1, {"token": "t"}]}),
        (_keywords, (), {"user_id": 2}),
        (_varargs, ("a", "b", "c"), {"token": "t"}),
        (_varargs, ({"authorization": "x", "n": (1, 2)},), {}),
        (None, ("a", "b"), {"secret": 1}),
    ],
)
def test_the_cached_description_is_describe_call(
    taskkit_registry: Registry, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    signature = None if func is None else inspect.signature(func)
    declared = dataclasses.replace(taskkit_registry.job("echo"), signature=signature)
    template = taskkit_registry._create(declared, (), {})
    plan = Plan(declared, taskkit_registry.queue("default"), template, lambda *_: None)
    for _ in range(2):  # the first call fills the caches, the second reads them
        assert plan.describe(args, kwargs) == describe_call("echo", args, kwargs, signature)


def test_eager_mode_runs_every_call_at_once(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    taskkit_registry.eager = True
    many = taskkit_registry.enqueue_many([("echo", (1,), {}), ("echo", (), {"a": 2})])
    assert [j.return_value()["args"] for j in many] == [["1"], []]
    assert many[1].return_value()["kwargs"] == {"a": "2"}
    assert redis_conn.dbsize() == 0
