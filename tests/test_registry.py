"""Enqueueing by name: plain RQ jobs with the declared settings, checked in the caller."""

from __future__ import annotations

import json
import pickle
import socket
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer, PickleSerializer
from worker_support import PICKLE_PROBE_JOBS, PROBE_JOBS

from taskkit import (
    JobArgumentsError,
    RedisUnavailableError,
    Registry,
    UnknownJobError,
    load,
)
from taskkit.testing import run_burst_worker

RECEIPT = "payments.jobs.send_payment_receipt"


def raw_hash(conn: redis.Redis, job: Job) -> dict[str, bytes]:
    return {key.decode(): value for key, value in conn.hgetall(job.key).items()}


def test_enqueue_returns_a_plain_rq_job_with_the_declared_settings(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    job = taskkit_registry.enqueue("send_payment_receipt", user_id=1, payment_id=7)

    assert type(job) is Job
    assert (job.origin, job.timeout, job.result_ttl, job.failure_ttl) == (
        "emails",
        30,
        86400,
        7 * 86400,
    )
    assert (job.retries_left, job.retry_intervals) == (3, [10, 60, 300])
    assert job.description == "Email the receipt for a completed payment"
    assert job.meta == {"taskkit_job": "send_payment_receipt"}
    assert job.get_status() == JobStatus.QUEUED
    assert Queue("emails", connection=redis_conn).job_ids == [job.id]


def test_the_redis_entry_is_plain_rq_json(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    job = taskkit_registry.enqueue("send_payment_receipt", user_id=1, payment_id=7)

    stored = raw_hash(redis_conn, job)
    assert json.loads(zlib.decompress(stored["data"])) == [
        RECEIPT,
        None,
        [],
        {"user_id": 1, "payment_id": 7},
    ]
    assert json.loads(stored["meta"]) == {"taskkit_job": "send_payment_receipt"}
    assert stored["origin"] == b"emails"
    assert stored["timeout"] == b"30"
    assert stored["retries_left"] == b"3"
    assert json.loads(stored["retry_intervals"]) == [10, 60, 300]
    # Any RQ consumer configured for JSON reads it; one expecting pickle cannot.
    fetched = Queue("emails", connection=redis_conn, serializer=JSONSerializer).fetch_job(job.id)
    assert fetched is not None
    assert (fetched.func_name, fetched.kwargs) == (RECEIPT, {"user_id": 1, "payment_id": 7})
    with pytest.raises(DeserializationError):
        _ = Job.fetch(job.id, connection=redis_conn, serializer=PickleSerializer).func_name


@pytest.mark.parametrize(
    ("name", "call", "expected"),
    [
        ("send_payment_receipt", ((), {"user_id": 1}), "missing a required argument: 'payment_id'"),
        (
            "send_payment_receipt",
            ((), {"user_id": 1, "payment_id": 2, "coupon": "x"}),
            "unexpected keyword 'coupon'",
        ),
        ("send_payment_receipt", ((1, 2, 3), {}), "too many positional arguments"),
        (
            "send_payment_receipt",
            ((), {"user_id": 1, "payment_id": datetime(2025, 1, 1, tzinfo=UTC)}),
            "argument 'payment_id' (datetime) cannot be sent as JSON",
        ),
        ("echo", ((1, object()), {}), "argument 2 (object) cannot be sent as JSON"),
        ("echo", ((), {"tags": {"a"}}), "argument 'tags' (set) cannot be sent as JSON"),
    ],
)
def test_bad_arguments_fail_in_the_caller_naming_job_and_argument(
    taskkit_registry: Registry,
    redis_conn: redis.Redis,
    name: str,
    call: tuple[tuple[Any, ...], dict[str, Any]],
    expected: str,
) -> None:
    args, kwargs = call
    for enqueue in (
        lambda: taskkit_registry.enqueue(name, *args, **kwargs),
        lambda: taskkit_registry.enqueue_in(timedelta(seconds=5), name, *args, **kwargs),
        lambda: taskkit_registry.enqueue_many([("noop", (), {}), (name, args, kwargs)]),
    ):
        with pytest.raises(JobArgumentsError) as caught:
            enqueue()
        assert f"job {name!r}" in str(caught.value)
        assert expected in str(caught.value)
    assert redis_conn.dbsize() == 0, "nothing may reach Redis when any call is wrong"


def test_an_unknown_job_name_suggests_the_close_one(taskkit_registry: Registry) -> None:
    with pytest.raises(UnknownJobError, match="did you mean 'send_payment_receipt'"):
        taskkit_registry.enqueue("send_payment_reciept", user_id=1, payment_id=1)
    with pytest.raises(UnknownJobError, match=r"no job named 'zzz'.*declare it under jobs:"):
        taskkit_registry.enqueue("zzz")


def test_a_job_may_take_a_keyword_called_name(taskkit_registry: Registry) -> None:
    job = taskkit_registry.enqueue("echo", "positional", name="kw")
    assert (job.args, job.kwargs) == (("positional",), {"name": "kw"})


def test_enqueue_in_and_enqueue_at_land_in_rqs_scheduled_registry(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    before = datetime.now(UTC)
    later = taskkit_registry.enqueue_in(timedelta(minutes=5), "send_payment_receipt", 1, 2)
    naive = datetime(2030, 1, 2, 3, 4, 5)  # naive: taken as UTC
    at = taskkit_registry.enqueue_at(naive, "send_payment_receipt", user_id=1, payment_id=3)

    scheduled = ScheduledJobRegistry("emails", connection=redis_conn)
    assert set(scheduled.get_job_ids()) == {later.id, at.id}
    assert Queue("emails", connection=redis_conn).count == 0
    when = scheduled.get_scheduled_time(later)
    assert before + timedelta(minutes=5) - timedelta(seconds=1) <= when
    assert when <= datetime.now(UTC) + timedelta(minutes=5)
    assert scheduled.get_scheduled_time(at) == naive.replace(tzinfo=UTC)
    assert later.get_status() == JobStatus.SCHEDULED
    assert (later.retries_left, later.timeout) == (3, 30)


def counting_client(url: str) -> tuple[redis.Redis, list[int]]:
    """A real client that counts round trips (each packed send is one)."""
    sends = [0]

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends[0] += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return redis.Redis(connection_pool=pool), sends


def test_enqueue_many_is_one_round_trip_and_makes_the_same_jobs(
    taskkit_registry: Registry, redis_url: str, redis_conn: redis.Redis
) -> None:
    client, sends = counting_client(redis_url)
    taskkit_registry.connection = client
    taskkit_registry.enqueue("noop")  # opens the connection and caches the server version

    before = sends[0]
    single = [taskkit_registry.enqueue("send_payment_receipt", 1, n) for n in range(3)]
    one_by_one = sends[0] - before
    calls = [("send_payment_receipt", (1, n), {}) for n in range(20)] + [("noop", (), {})]
    before = sends[0]
    many = taskkit_registry.enqueue_many(calls)

    assert sends[0] - before == 1
    assert one_by_one == 3, "a single enqueue is one round trip too"
    assert len(many) == 21
    assert Queue("emails", connection=redis_conn).job_ids == [j.id for j in single + many[:20]]
    stored, reference = raw_hash(redis_conn, many[0]), raw_hash(redis_conn, single[0])
    for field in ("origin", "timeout", "result_ttl", "failure_ttl", "retries_left", "meta"):
        assert stored[field] == reference[field], field
    assert stored["retry_intervals"] == reference["retry_intervals"]
    assert many[-1].origin == "default"
    client.close()


@pytest.mark.parametrize("taskkit_config_path", [PICKLE_PROBE_JOBS])
def test_serializer_pickle_is_an_opt_in_that_works_end_to_end(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    moment = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
    job = taskkit_registry.enqueue("echo", moment, (1, 2), tags={"a"})

    data = zlib.decompress(raw_hash(redis_conn, job)["data"])
    assert pickle.loads(data)[0] == "probes.echo"  # a pickle, not JSON
    with pytest.raises(
        JobArgumentsError, match=r"argument 1 \(function\) cannot be sent as pickle"
    ):
        taskkit_registry.enqueue("echo", lambda: None)

    assert run_burst_worker(taskkit_registry).finished == 1
    result = Job.fetch(job.id, connection=redis_conn, serializer=PickleSerializer).return_value()
    assert result["types"] == ["datetime", "tuple"], "pickle keeps the types JSON would not"
    assert result["kwargs"] == {"tags": "{'a'}"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_redis_down_raises_redis_unavailable_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:s3cret-pw@127.0.0.1:{closed_port()}/0")
    registry = load(PROBE_JOBS, cached=False)
    monkeypatch.setattr(registry, "_eager", False)
    for enqueue in (
        lambda: registry.enqueue("noop"),
        lambda: registry.enqueue_in(timedelta(seconds=1), "noop"),
        lambda: registry.enqueue_many([("noop", (), {})]),
    ):
        with pytest.raises(RedisUnavailableError) as caught:
            enqueue()
        message = str(caught.value)
        assert "s3cret-pw" not in message
        assert "is not reachable" in message
        assert "127.0.0.1" in message


def test_eager_is_read_when_enqueueing_not_when_loading(
    taskkit_registry: Registry, monkeypatch: pytest.MonkeyPatch, redis_conn: redis.Redis
) -> None:
    monkeypatch.setenv("TASKKIT_EAGER", "1")
    job = taskkit_registry.enqueue("echo", (1, 2))
    assert job.return_value()["args"] == ["[1, 2]"]
    taskkit_registry.eager = False  # an explicit setting wins over the variable
    assert taskkit_registry.enqueue("noop").get_status() == JobStatus.QUEUED
    assert redis_conn.dbsize() > 0


def test_load_is_cached_per_file_until_the_file_changes(tmp_path: Path) -> None:
    config = tmp_path / "jobs.yaml"
    config.write_text("version: 1\njobs:\n  dump: {func: 'json:dumps'}\n", encoding="utf-8")
    first = load(config)
    assert load(str(config)) is first
    assert load(config, cached=False) is not first
    config.write_text("version: 1\njobs:\n  dumps: {func: 'json:dumps'}\n", encoding="utf-8")
    assert list(load(config).jobs) == ["dumps"]
