"""Redis goes away under the scheduler: ticks resume, the schedules come back, nothing
fires twice; a dead ``--with-scheduler`` child is started again; past ``redis_timeout``
``run-scheduler`` exits 1 with one line.

The outage tests use a Redis *without* persistence: it comes back empty, so the
scheduler has to sync the schedules again on its own. Each run of the ``every: 1s``
schedule appends its nominal tick to a file, which survives the restart.
"""

from __future__ import annotations

import itertools
import logging
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from fault_support import FAULT_APPS, FakeClock, PrivateRedis, descendants, kill, pid_alive
from redis.backoff import NoBackoff
from redis.retry import Retry
from worker_support import WorkerCli, wait_for

from taskkit.registry import load
from taskkit.schedules import SCHEDULER_KEY_PREFIX, Scheduler
from taskkit.worker import RedisGoneError

pytestmark = pytest.mark.slow

CONFIG = str(FAULT_APPS / "jobs-schedules.yaml")
REDIS_TIMEOUT = 30  # worker.redis_timeout in that file
OUTAGE = 3.0
STOP_TIMEOUT = 90
"""A worker's stop may stall for up to 60 s in redis-py's PubSubWorkerThread.stop(), which
joins RQ's pubsub thread with no timeout: not what these tests are about."""


@pytest.fixture
def volatile_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server without persistence: restarted, it is empty."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def ticks(path: Path) -> list[float]:
    """The nominal ticks the runs recorded (Unix time), in the order they ran."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [datetime.fromisoformat(line.split()[0]).timestamp() for line in lines]


def start(worker_cli: WorkerCli, mode: str) -> list[subprocess.Popen[bytes]]:
    """Two workers and a scheduler: ``run-scheduler``, or the first worker's child."""
    worker = ("run-worker", "-c", CONFIG, "--worker-class", "simple")
    if mode == "run-scheduler":
        return [
            worker_cli.start(*worker),
            worker_cli.start(*worker),
            worker_cli.start("run-scheduler", "-c", CONFIG),
        ]
    return [worker_cli.start(*worker, "--with-scheduler"), worker_cli.start(*worker)]


@pytest.mark.parametrize("mode", ["run-scheduler", "with-scheduler"])
def test_ticks_resume_after_redis_restarts_empty_none_lost_beyond_the_outage_none_doubled(
    worker_cli: WorkerCli, volatile_redis: PrivateRedis, tmp_path: Path, mode: str
) -> None:
    log = tmp_path / "ticks.log"
    worker_cli.env.update(REDIS_URL=volatile_redis.url, TICK_LOG=str(log))
    processes = start(worker_cli, mode)
    wait_for(lambda: len(ticks(log)) >= 3, timeout=60, what="three ticks before the outage")

    volatile_redis.crash()
    killed = time.time()
    time.sleep(OUTAGE)  # the outage itself
    volatile_redis.start()
    back = time.time()
    wait_for(
        lambda: len([t for t in ticks(log) if t > back]) >= 5,
        timeout=REDIS_TIMEOUT + 30,
        what="five ticks after Redis came back",
    )
    codes = [worker_cli.stop(process, STOP_TIMEOUT) for process in processes]
    outputs = [worker_cli.stderr(process) for process in processes]

    scheduler_output = outputs[-1] if mode == "run-scheduler" else outputs[0]
    enqueued = sorted(enqueued_ticks(scheduler_output))
    ran = ticks(log)
    # None doubled: neither enqueued twice by the scheduler, nor run twice.
    assert [t for t, n in Counter(enqueued).items() if n > 1] == []
    assert [t for t, n in Counter(ran).items() if n > 1] == []
    # None lost beyond the outage: the scheduler enqueued every tick but those from the
    # crash until it reached Redis again (the misfire policy's one catch-up among them).
    resumed = min(t for t in enqueued if t > back)
    gaps = [(a, b) for a, b in itertools.pairwise(enqueued) if b - a > 1]
    print(f"\n{mode}: ticks resumed {resumed - back:.1f} s after Redis came back; gaps {gaps}")
    # A gap before the crash is the misfire policy's doing when the scheduler itself fell
    # behind (a loaded machine): tick a was fired when b was already the next one due.
    fired_at = dict(enqueue_times(scheduler_output))
    for a, b in gaps:
        stalled = fired_at[a] >= b - 1
        assert (a >= killed - 2 or stalled) and b <= resumed, (killed, back, gaps, fired_at)
    assert resumed - back < REDIS_TIMEOUT
    # What the lost Redis held (jobs queued, or taken and not started) is lost with it;
    # every tick enqueued after it came back ran, up to the last one that did.
    assert {t for t in enqueued if back < t <= max(ran)} <= set(ran)
    assert codes == [0] * len(processes), outputs
    for output in outputs:
        assert "Traceback" not in output
    assert "taskkit's scheduler (recurring schedules) lost Redis at" in scheduler_output
    assert "the schedules are gone from Redis" in scheduler_output


def enqueued_ticks(output: str) -> list[float]:
    """The ticks a scheduler's log says it enqueued (Unix time)."""
    return [tick for tick, _ in enqueue_times(output)]


def enqueue_times(output: str) -> list[tuple[float, float]]:
    """(tick, when its log line was written) for each tick the scheduler enqueued."""
    found = re.findall(
        r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \S+ taskkit\.scheduler: "
        r"pulse: tick (\S+) enqueued",
        output,
        re.MULTILINE,
    )
    return [
        (datetime.fromisoformat(tick).timestamp(), _local(stamp) + int(millis) / 1000)
        for stamp, millis, tick in found
    ]


def _local(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()


def test_a_with_scheduler_child_that_dies_is_started_again(
    worker_cli: WorkerCli, volatile_redis: PrivateRedis, tmp_path: Path
) -> None:
    log = tmp_path / "ticks.log"
    worker_cli.env.update(REDIS_URL=volatile_redis.url, TICK_LOG=str(log))
    worker = worker_cli.start("run-worker", "-c", CONFIG, "--with-scheduler")
    wait_for(lambda: ticks(log), timeout=60, what="the first tick")

    (child,) = scheduler_children(worker.pid)
    kill([child], signal.SIGKILL)  # as the out-of-memory killer would
    killed = time.time()
    wait_for(
        lambda: len([t for t in ticks(log) if t > killed]) >= 2,
        timeout=60,
        what="ticks from a new scheduler",
    )

    assert not pid_alive(child)
    (restarted,) = scheduler_children(worker.pid)
    assert restarted != child
    assert worker.poll() is None, "the worker lives on"
    assert worker_cli.stop(worker, STOP_TIMEOUT) == 0
    output = worker_cli.stderr(worker)
    assert f"(recurring schedules) (pid {child}) was killed by SIGKILL" in output
    assert "starting it again in 1 s" in output
    assert not pid_alive(restarted), "the scheduler stops with its worker"


def scheduler_children(worker: int) -> list[int]:
    """The --with-scheduler child processes of a worker."""
    found = []
    for pid in descendants(worker):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"taskkit.schedules.process" in command and pid_alive(pid):
            found.append(pid)
    return found


# -- Redis does not come back ----------------------------------------------------------------


def test_run_scheduler_gives_up_after_the_redis_timeout_with_one_clear_line(
    worker_cli: WorkerCli, password_redis: PrivateRedis
) -> None:
    worker_cli.env["REDIS_URL"] = password_redis.url
    process = worker_cli.start("run-scheduler", "-c", CONFIG, "--redis-timeout", "3")
    client = password_redis.client()
    wait_for(lambda: list(client.scan_iter(f"{SCHEDULER_KEY_PREFIX}*")), what="the scheduler")
    client.close()

    password_redis.stop()
    code = process.wait(timeout=90)

    stderr = worker_cli.stderr(process)
    assert code == 1, stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert "cannot keep running the scheduler (no answer from Redis for 3 s" in line
    assert "Redis at redis://:***@127.0.0.1:" in line
    assert "Traceback" not in stderr
    assert str(password_redis.password) not in stderr


def test_run_scheduler_waits_for_redis_at_start_then_gives_up_with_one_line(
    worker_cli: WorkerCli,
) -> None:
    worker_cli.env["REDIS_URL"] = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens there
    done = worker_cli.run("run-scheduler", "-c", CONFIG, "--redis-timeout", "2")
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: cannot start the scheduler (no answer from Redis for 2 s")
    assert "is waiting for Redis at redis://:***@127.0.0.1:1/0" in done.stderr
    assert "s3cret-pw" not in done.stderr
    assert "Traceback" not in done.stderr


def test_the_scheduler_retries_half_a_second_then_1_then_every_2_s_until_the_timeout(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from taskkit.schedules.process import SchedulerLoop

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    registry = load(CONFIG, cached=False)
    registry.connection = redis.Redis(port=1, retry=Retry(NoBackoff(), 0))  # one try each
    loop = SchedulerLoop(Scheduler(registry), redis_timeout=10)
    clock = FakeClock(monkeypatch)

    with caplog.at_level(logging.WARNING, "taskkit.scheduler"), pytest.raises(RedisGoneError):
        loop.run()

    assert clock.sleeps == [0.5, 1, 2, 2, 2, 2, 2]
    waiting = [r for r in caplog.records if "is waiting for Redis" in r.getMessage()]
    assert len(waiting) == 1, "one line, not one per try"


def test_the_log_names_rqs_scheduler_when_it_stops_for_want_of_redis(
    worker_cli: WorkerCli, volatile_redis: PrivateRedis
) -> None:
    """A worker runs two schedulers' worth of processes: its log says which one stopped."""
    worker_cli.env["REDIS_URL"] = volatile_redis.url
    worker = worker_cli.start("run-worker", "-c", CONFIG, "--worker-class", "simple")
    client = volatile_redis.client()
    wait_for(lambda: client.exists("rq:scheduler-lock:default"), what="RQ's scheduler")
    client.close()

    volatile_redis.crash()
    wait_for(
        lambda: "stopped: lost Redis" in worker_cli.stderr(worker), what="the scheduler to stop"
    )
    volatile_redis.start()

    assert worker_cli.stop(worker, STOP_TIMEOUT) == 0
    (line,) = [line for line in worker_cli.stderr(worker).splitlines() if "stopped:" in line]
    assert "RQ's scheduler (delayed jobs and retries) stopped: lost Redis (" in line
