"""Prometheus metrics over every worker process and host: ``/metrics`` and ``taskkit metrics``.

Two sources, chosen by what each costs a worker per job (measured: see the README's
Performance section):

- **Counted by the workers**: ``taskkit_jobs_total`` and ``taskkit_job_duration_seconds``.
  RQ's registries cannot give them (finished and failed jobs leave them after their TTL,
  so counts would go down, and retries leave no trace), so each worker adds its job's
  outcome and run time to one Redis hash, inside the MULTI/EXEC that RQ already sends
  when a job ends (:class:`taskkit.worker.metering.Metering`): two commands more, no
  round trip more.
- **Read at scrape time** from RQ's own keys: queue sizes by state, the age of each
  queue's oldest job, workers by state; and from the schedule store, each schedule's
  lateness and next fire time. A scrape costs a few round trips, whatever the traffic.

The worker's per-job path uses only :func:`count_job` and its helpers;
prometheus_client is imported only when metrics are rendered.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rq import Worker
from rq.job import Job

from taskkit import connection
from taskkit.errors import TaskkitError
from taskkit.registry import META_KEY

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from prometheus_client.metrics_core import Metric
    from redis.client import Pipeline

    from taskkit.registry import Registry

JOBS_KEY = "taskkit:metrics:jobs"
"""The hash the workers count ended jobs in: ``job\\toutcome\\tbucket`` and ``job\\tsum``."""

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
"""Upper bounds (seconds) of the run time histogram: no-op jobs to the 30 min a job may take."""

OUTCOMES = ("finished", "failed", "retried", "refused")
QUEUE_STATES = ("queued", "started", "scheduled", "deferred", "failed", "finished")
UNDECLARED = "<undeclared>"
"""The job label of a refused entry that names no declared job (forged names stay out)."""
_NO_RUN = "-"  # the bucket of an ended job without a run time (refused, never started)


# -- the worker side ---------------------------------------------------------------------


def job_label(job: Job) -> str:
    """The declared name of ``job``, or :data:`UNDECLARED` (bounded label values)."""
    name = job.meta.get(META_KEY) if isinstance(job.meta, dict) else None
    declared = getattr(getattr(type(job), "registry", None), "jobs", None)
    if isinstance(name, str) and (declared is None or name in declared):
        return name
    return UNDECLARED


def run_seconds(job: Job, outcome: str) -> float | None:
    """How long the job ran (RQ's timestamps), or None for a job that did not run."""
    if outcome == "refused" or job.started_at is None or job.ended_at is None:
        return None
    return max(0.0, (job.ended_at - job.started_at).total_seconds())


def count_job(pipeline: Pipeline, name: str, outcome: str, seconds: float | None) -> None:
    """Add one ended job to :data:`JOBS_KEY` (two commands; one without a run time)."""
    if seconds is None:
        pipeline.hincrby(JOBS_KEY, f"{name}\t{outcome}\t{_NO_RUN}", 1)
        return
    bucket = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
    pipeline.hincrby(JOBS_KEY, f"{name}\t{outcome}\t{bucket}", 1)
    pipeline.hincrby(JOBS_KEY, f"{name}\tsum", round(seconds * 1_000_000))


# -- the scrape side -----------------------------------------------------------------------


def render_metrics(registry: Registry) -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, and its content type, read from Redis now.

    For any web framework: the dashboard's ``/metrics`` and ``taskkit metrics`` serve
    this. Raises :class:`~taskkit.errors.RedisUnavailableError` when Redis cannot be read.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    families = connection.call(registry.redis_url, "read metrics", lambda: _families(registry))
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(_Fixed(families))
    return generate_latest(collectors), CONTENT_TYPE_LATEST


def wsgi_app(registry: Registry) -> WSGIApplication:
    """A WSGI app that answers ``GET /metrics`` (and ``/``); 503 while Redis is away."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            return _answer(start_response, "404 Not Found", b"not found; see /metrics\n")
        try:
            body, content_type = render_metrics(registry)
        except TaskkitError as error:
            return _answer(start_response, "503 Service Unavailable", f"{error}\n".encode())
        return _answer(start_response, "200 OK", body, content_type)

    return app


def _answer(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def make_server(registry: Registry, host: str, port: int) -> WSGIServer:
    """A server of :func:`wsgi_app` on ``host:port`` (``serve_forever()`` runs it).

    Raises :class:`TaskkitError` when the address cannot be taken.
    """
    from wsgiref.simple_server import WSGIRequestHandler
    from wsgiref.simple_server import make_server as wsgi_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No line per scrape on stderr."""

    try:
        return wsgi_server(host, port, wsgi_app(registry), handler_class=Quiet)
    except OSError as error:
        raise TaskkitError(
            f"cannot serve metrics on {host}:{port}: {error.strerror or error}; "
            "choose another --port (or --host)"
        ) from None


class _Fixed:
    """A prometheus_client collector of metric families read beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _families(registry: Registry) -> list[Metric]:
    now = time.time()
    return [
        *_queue_families(registry, now),
        _worker_family(registry),
        *_job_families(registry),
        *_schedule_families(registry, now),
    ]


def _queue_families(registry: Registry, now: float) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    jobs = GaugeMetricFamily(
        "taskkit_queue_jobs", "Jobs of each declared queue, by state.", labels=["queue", "state"]
    )
    oldest = GaugeMetricFamily(
        "taskkit_queue_oldest_job_age_seconds",
        "How long the job at the head of each queue has waited (0 when empty).",
        labels=["queue"],
    )
    names = registry.queue_names
    with registry.connection.pipeline(transaction=False) as pipe:
        for name in names:
            queue = registry.queue(name)
            pipe.llen(queue.key)
            for state in QUEUE_STATES[1:]:
                pipe.zcard(getattr(queue, f"{state}_job_registry").key)
            pipe.lindex(queue.key, 0)
        replies = pipe.execute()
    width = len(QUEUE_STATES) + 1
    heads: list[Any] = []
    for i, name in enumerate(names):
        row = replies[i * width : (i + 1) * width]
        for state, count in zip(QUEUE_STATES, row, strict=False):
            jobs.add_metric([name, state], count)
        heads.append(row[-1])
    for name, age in zip(names, _ages(registry, heads, now), strict=True):
        oldest.add_metric([name], age)
    return [jobs, oldest]


def _ages(registry: Registry, heads: list[Any], now: float) -> list[float]:
    """Seconds since each head job was enqueued: one round trip for all queues."""
    with registry.connection.pipeline(transaction=False) as pipe:
        for head in filter(None, heads):
            pipe.hget(Job.key_for(_text(head)), "enqueued_at")
        stamps = iter(pipe.execute())
    return [_age(next(stamps), now) if head else 0.0 for head in heads]


def _age(stamp: Any, now: float) -> float:
    from rq.utils import utcparse

    if not stamp:
        return 0.0
    try:
        return max(0.0, now - utcparse(_text(stamp)).timestamp())
    except ValueError:  # a hash written by some other producer: no age to tell
        return 0.0


def _worker_family(registry: Registry) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "taskkit_workers", "Live RQ workers on this Redis (all hosts), by state.", labels=["state"]
    )
    conn = registry.connection
    keys = sorted(conn.smembers(Worker.redis_workers_keys))
    with conn.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "state")
        states = pipe.execute()
    counts = {"busy": 0, "idle": 0}
    for state in states:
        if state is not None:  # a registration whose worker hash expired: a dead worker
            counts[_text(state)] = counts.get(_text(state), 0) + 1
    for state, count in sorted(counts.items()):
        family.add_metric([state], count)
    return family


def _job_families(registry: Registry) -> list[Metric]:
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    totals = CounterMetricFamily(
        "taskkit_jobs",
        "Jobs that ended, by declared job and outcome (all workers, all hosts).",
        labels=["job", "outcome"],
    )
    durations = HistogramMetricFamily(
        "taskkit_job_duration_seconds",
        "Run time of each job that ran (finished, failed or retried), by declared job.",
        labels=["job"],
    )
    counts, sums = _read_counts(registry.connection.hgetall(JOBS_KEY))
    names = sorted({name for name, _, _ in counts} | set(registry.jobs))
    for name in names:
        for outcome in OUTCOMES:
            total = sum(n for (job, out, _), n in counts.items() if (job, out) == (name, outcome))
            totals.add_metric([name, outcome], total)
        per_bucket = [0] * (len(BUCKETS) + 1)
        for (job, _, bucket), n in counts.items():
            if job == name and isinstance(bucket, int):
                per_bucket[bucket] += n
        bounds = [*(_bound(b) for b in BUCKETS), "+Inf"]
        cumulative = [sum(per_bucket[: i + 1]) for i in range(len(per_bucket))]
        durations.add_metric(
            [name], list(zip(bounds, cumulative, strict=True)), sums.get(name, 0) / 1_000_000
        )
    return [totals, durations]


def _read_counts(
    raw: dict[Any, Any],
) -> tuple[dict[tuple[str, str, int | None], int], dict[str, int]]:
    """The metrics hash as ``{(job, outcome, bucket): count}`` and ``{job: sum in µs}``."""
    counts: dict[tuple[str, str, int | None], int] = {}
    sums: dict[str, int] = {}
    for field, value in raw.items():
        parts = _text(field).split("\t")
        try:
            number = int(value)
        except ValueError:
            continue  # not ours: skip rather than fail the scrape
        if len(parts) == 2 and parts[1] == "sum":
            sums[parts[0]] = number
        elif len(parts) == 3 and parts[1] in OUTCOMES:
            bucket = int(parts[2]) if parts[2].isdigit() else None
            if bucket is None or bucket <= len(BUCKETS):
                counts[(parts[0], parts[1], bucket)] = number
    return counts, sums


def _bound(value: float) -> str:
    return repr(float(value))


def _schedule_families(registry: Registry, now: float) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    from taskkit.schedules import describe

    lateness = GaugeMetricFamily(
        "taskkit_schedule_lateness_seconds",
        "How late the last tick of each schedule was enqueued, after its nominal time.",
        labels=["schedule"],
    )
    following = GaugeMetricFamily(
        "taskkit_schedule_next_fire_timestamp_seconds",
        "When each schedule fires next (Unix time), as stored in Redis.",
        labels=["schedule"],
    )
    if not registry.config.schedules:
        return [lateness, following]
    for view in describe(registry, count=0):
        late = _lateness(view.last)
        if late is not None:
            lateness.add_metric([view.name], late)
        if view.stored_next is not None:
            following.add_metric([view.name], view.stored_next.timestamp())
    return [lateness, following]


def _lateness(last: dict[str, Any]) -> float | None:
    """Seconds between a schedule's last enqueued tick and its nominal time, if known."""
    fired_at, nominal = last.get("at"), last.get("nominal")
    if last.get("outcome") != "enqueued":
        return None  # skipped ticks ran nothing; a run by hand has no nominal time
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (fired_at, nominal)):
        return None
    return max(0.0, float(fired_at) - float(nominal))  # type: ignore[arg-type]


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


__all__ = [
    "BUCKETS",
    "JOBS_KEY",
    "OUTCOMES",
    "QUEUE_STATES",
    "UNDECLARED",
    "count_job",
    "make_server",
    "render_metrics",
    "wsgi_app",
]
