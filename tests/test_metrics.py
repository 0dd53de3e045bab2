"""``/metrics``: every family, aggregated over separate worker processes and a scheduler.

Two real workers (a simple one and a forking one) and a real scheduler run against the
test database; ``taskkit metrics --port`` serves the figures, which are parsed with
prometheus_client's own parser and checked against what Redis holds.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from ops_support import free_port, poll, write_jobs_yaml
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue
from rq.serializers import JSONSerializer
from worker_support import WorkerCli

from taskkit import metrics, schedules
from taskkit.cli import cli
from taskkit.metrics import BUCKETS, JOBS_KEY, UNDECLARED
from taskkit.registry import META_KEY, Registry, load

pytestmark = pytest.mark.slow

EXTRA_JOBS = """\
  retry_once: {func: "opsjobs:fail_first_time", retry: {max: 1}}
  tick: {func: "opsjobs:ping"}
  parked_ping: {func: "opsjobs:ping", queue: parked}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_jobs_yaml(tmp_path, extra_jobs=EXTRA_JOBS)
    text = path.read_text(encoding="utf-8")
    text = text.replace("  default: {}\n", "  default: {}\n  parked: {}\n", 1)
    text = text.replace(
        "  hourly-ping:\n    job: ping\n    every: 1h\n    kwargs: {value: scheduled}\n",
        "  every-second:\n    job: tick\n    every: 1s\n",
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def registry(config: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("TASKKIT_REDIS_URL", raising=False)
    return load(config, cached=False)


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``/metrics`` parsed: sample name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples[name][tuple(sorted(labels.items()))])


def test_metrics_over_two_workers_and_a_scheduler_match_redis(
    registry: Registry, config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    for _ in range(3):
        registry.enqueue("ping")
    registry.enqueue("needs_flag", flag="never-set")
    registry.enqueue("retry_once", marker="retry-marker")
    queue.enqueue("builtins.print", "forged")  # refused: jobs.yaml declares no such job
    parked = registry.enqueue("parked_ping")  # on a queue no worker serves
    registry.enqueue_in(timedelta(hours=1), "ping")
    blocker = registry.enqueue("block_until", key="release")
    queue.enqueue("opsjobs.ping", depends_on=blocker, meta={META_KEY: "ping"})  # deferred

    args = ("-c", str(config), "--queues", "high,default", "--log-level", "WARNING")
    simple = worker_cli.start("run-worker", *args, "--worker-class", "simple")
    fork = worker_cli.start("run-worker", *args, "--worker-class", "fork")
    scheduler = worker_cli.start("run-scheduler", "-c", str(config), "--interval", "0.2")
    poll(lambda: ticks(registry) >= 2, what="two ticks of the every-second schedule")
    assert worker_cli.stop(scheduler) == 0
    done = ("ping", "needs_flag", "retry_once", UNDECLARED, "tick")
    poll(
        lambda: redis_conn.exists("release:running") and not redis_conn.llen(queue.key),
        what="every job but the blocker ended, and the blocker runs",
    )
    poll(lambda: ended(redis_conn, "tick") == ticks(registry), what="every tick's job ended")

    port = free_port()
    server = worker_cli.start("metrics", "-c", str(config), "--port", str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    poll(lambda: responds(url), what="taskkit metrics to serve")
    before = time.time()
    samples = scrape(url)
    after = time.time()

    # Workers, from their own hashes: one runs the blocker, the other waits.
    assert value(samples, "taskkit_workers", state="busy") == 1
    assert value(samples, "taskkit_workers", state="idle") == 1
    # Queues by state, as RQ's registries hold them.
    for name in registry.queue_names:
        rq_queue = registry.queue(name)
        expected = {
            "queued": rq_queue.count,
            "started": rq_queue.started_job_registry.count,
            "scheduled": rq_queue.scheduled_job_registry.count,
            "deferred": rq_queue.deferred_job_registry.count,
            "failed": rq_queue.failed_job_registry.count,
            "finished": rq_queue.finished_job_registry.count,
        }
        for state, count in expected.items():
            assert value(samples, "taskkit_queue_jobs", queue=name, state=state) == count
    default = {
        s: value(samples, "taskkit_queue_jobs", queue="default", state=s)
        for s in ("started", "scheduled", "deferred", "failed")
    }
    assert default == {"started": 1, "scheduled": 1, "deferred": 1, "failed": 2}
    assert value(samples, "taskkit_queue_jobs", queue="parked", state="queued") == 1
    # The oldest waiting job's age: the parked job's, measured during the scrape.
    waited = parked.enqueued_at.timestamp()
    age = value(samples, "taskkit_queue_oldest_job_age_seconds", queue="parked")
    assert before - waited - 1e-3 <= age <= after - waited + 1e-3
    assert value(samples, "taskkit_queue_oldest_job_age_seconds", queue="high") == 0
    # Ended jobs by outcome, counted by both workers together.
    tick_runs = ticks(registry)
    assert {(job, outcome): value(samples, "taskkit_jobs_total", job=job, outcome=outcome)
            for job in done for outcome in metrics.OUTCOMES
            if samples["taskkit_jobs_total"].get((("job", job), ("outcome", outcome)))} == {
        ("ping", "finished"): 3,
        ("needs_flag", "failed"): 1,
        ("retry_once", "retried"): 1,
        ("retry_once", "finished"): 1,
        (UNDECLARED, "refused"): 1,
        ("tick", "finished"): tick_runs,
    }  # fmt: skip
    assert value(samples, "taskkit_jobs_total", job="block_until", outcome="finished") == 0
    # Run times: one observation per run (refused entries did not run), cumulative buckets.
    runs = {"ping": 3, "needs_flag": 1, "retry_once": 2, "tick": tick_runs, "block_until": 0}
    for job, count in runs.items():
        assert value(samples, "taskkit_job_duration_seconds_count", job=job) == count
        assert value(samples, "taskkit_job_duration_seconds_bucket", job=job, le="+Inf") == count
        buckets = [
            value(samples, "taskkit_job_duration_seconds_bucket", job=job, le=repr(float(b)))
            for b in BUCKETS
        ]
        assert buckets == sorted(buckets)
        assert (value(samples, "taskkit_job_duration_seconds_sum", job=job) > 0) == (count > 0)
    check_schedule(samples, redis_conn)

    redis_conn.set("release", 1)
    for process in (server, simple, fork):
        assert worker_cli.stop(process) == 0


def check_schedule(samples: dict[str, Any], conn: redis.Redis) -> None:
    """The last tick's lateness and the next fire time, as the schedule store holds them."""
    state = json.loads(conn.hget(schedules.STATE_KEY, "every-second") or b"{}")
    assert state["outcome"] == "enqueued"
    late = value(samples, "taskkit_schedule_lateness_seconds", schedule="every-second")
    assert late == pytest.approx(state["at"] - state["nominal"])
    stored = conn.zscore(schedules.SCHEDULED_JOBS_KEY, schedules.schedule_id("every-second"))
    name = "taskkit_schedule_next_fire_timestamp_seconds"
    assert value(samples, name, schedule="every-second") == stored


def ticks(registry: Registry) -> int:
    """How many jobs the schedule enqueued so far (its jobs' meta name the schedule)."""
    conn = registry.connection
    count = 0
    for key in conn.scan_iter(match="rq:job:*"):
        if key.count(b":") != 2:
            continue  # a job's dependents set, not its hash
        meta = conn.hget(key, "meta")
        fired = json.loads(meta or b"{}")  # the schedule's template has no tick
        if fired.get(schedules.META_SCHEDULE) == "every-second" and schedules.META_TICK in fired:
            count += 1
    return count


def ended(conn: redis.Redis, job: str) -> int:
    """Ended runs of ``job`` in the metrics hash (all outcomes)."""
    return sum(
        int(n)
        for field, n in conn.hgetall(JOBS_KEY).items()
        if field.decode().startswith(f"{job}\t") and not field.decode().endswith("\tsum")
    )


def responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def test_taskkit_metrics_prints_them_once_without_a_port(
    registry: Registry, config: Path, redis_url: str
) -> None:
    registry.enqueue("ping")
    done = CliRunner().invoke(cli, ["metrics", "-c", str(config)], env={"REDIS_URL": redis_url})

    assert done.exit_code == 0, done.output
    families = {f.name: f for f in text_string_to_metric_families(done.output)}
    assert set(families) >= {
        "taskkit_queue_jobs",
        "taskkit_queue_oldest_job_age_seconds",
        "taskkit_workers",
        "taskkit_jobs",
        "taskkit_job_duration_seconds",
        "taskkit_schedule_lateness_seconds",
        "taskkit_schedule_next_fire_timestamp_seconds",
    }
    queued = [s for s in families["taskkit_queue_jobs"].samples if s.labels["state"] == "queued"]
    assert {s.labels["queue"]: s.value for s in queued} == {"high": 0, "default": 1, "parked": 0}


def test_redis_down_or_a_port_in_use_is_one_line_and_exit_1(
    config: Path, worker_cli: WorkerCli
) -> None:
    worker_cli.env["REDIS_URL"] = "redis://:s3cret@127.0.0.1:1/0"
    down = worker_cli.run("metrics", "-c", str(config))
    assert down.returncode == 1
    assert down.stderr.startswith("error: cannot read metrics: Redis at redis://:***@127.0.0.1:1/0")
    assert len(down.stderr.splitlines()) == 1 and "s3cret" not in down.stderr + down.stdout

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = worker_cli.run("metrics", "-c", str(config), "--port", str(port))
    assert busy.returncode == 1
    assert busy.stderr.startswith(f"error: cannot serve metrics on 127.0.0.1:{port}: ")
    assert len(busy.stderr.splitlines()) == 1


def test_the_grafana_dashboard_uses_only_the_families_taskkit_exports() -> None:
    dashboard = json.loads(
        (Path(__file__).parents[1] / "docs" / "grafana" / "taskkit.json").read_text()
    )
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\btaskkit_\w+", target["expr"])
    }
    exported = {
        "taskkit_queue_jobs",
        "taskkit_queue_oldest_job_age_seconds",
        "taskkit_workers",
        "taskkit_jobs_total",
        "taskkit_job_duration_seconds_bucket",
        "taskkit_schedule_lateness_seconds",
        "taskkit_schedule_next_fire_timestamp_seconds",
    }
    assert used == exported
