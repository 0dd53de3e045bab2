"""Long-lived worker processes fed batches of jobs, and throughput from RQ's timestamps.

Each :class:`Runner` is one worker process (taskkit's, bare RQ's, Flask-RQ's...) on a Redis
database of its own. It starts once and then runs batch after batch, so the suite can
alternate variants in short rounds (ABBA...) without paying a worker start-up per
measurement: on a shared, noisy machine, many short alternating measurements and their
medians say more than a few long ones. Between batches a worker waits, idle, for work.

A batch's throughput is ``jobs / (last job's ended_at - first job's started_at)``, read
from RQ's own job hashes: start-up, enqueueing and the driver's polling are not in it.
Its CPU cost is the CPU time the worker process and the work horses it waited for used
during the batch (``/proc/PID/stat``): less sensitive than wall time to what else runs on
a shared machine, so small differences show up in it first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from common import NOOP, PYTHON, taskkit_command
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import DefaultSerializer, JSONSerializer

Enqueue = Callable[[redis.Redis, int], list[str]]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Variant:
    """A kind of worker: its command line, how jobs are put on its queue, its serializer."""

    name: str
    command: list[str]
    enqueue: Enqueue
    serializer: Any = JSONSerializer
    batch: int = 100  # jobs per measured batch
    warmup: int = 100  # jobs run once after start, not measured


# -- the variants -------------------------------------------------------------------------


def taskkit_variant(
    name: str, jobs_yaml: Path, worker_class: str, job: str = "noop", processes: int = 1
) -> Variant:
    """``taskkit run-worker`` on the benchmark jobs.yaml, fed ``job`` through enqueue_many."""
    command = taskkit_command(
        "run-worker",
        "-c",
        str(jobs_yaml),
        "--queues",
        "default",
        "--worker-class",
        worker_class,
        "--processes",
        str(processes),
    )

    registries: list[Any] = []  # one of its own: runners are fed from several threads

    def enqueue(conn: redis.Redis, count: int) -> list[str]:
        import taskkit

        if not registries:
            registries.append(taskkit.load(jobs_yaml, cached=False))
        registry = registries[0]
        registry.connection = conn
        registry.eager = False
        return [job.id for job in registry.enqueue_many([(job, (), {})] * count)]

    return Variant(name, command, enqueue)


def bare_rq_variant(name: str, worker_class: str, func: str = NOOP) -> Variant:
    """A bare RQ worker of ``worker_class`` (JSON, logging at WARNING) running ``func``.

    Bare RQ at its best: the job module is imported before the worker starts (``rq
    worker`` would import it in every forked horse: see docs/design.md),
    and it logs less than taskkit does (no line per job). Like ``taskkit run-worker`` it
    runs RQ's scheduler.
    """
    worker = "SimpleWorker" if worker_class == "simple" else "Worker"
    module = func.rpartition(".")[0]
    code = (
        f"import sys, redis, {module}\n"
        f"from rq import {worker} as W\n"
        "from rq.serializers import JSONSerializer\n"
        "W(['default'], connection=redis.Redis.from_url(sys.argv[1]), serializer=JSONSerializer)"
        ".work(with_scheduler=True, logging_level='WARNING')\n"
    )

    def enqueue(conn: redis.Redis, count: int) -> list[str]:
        queue = Queue("default", connection=conn, serializer=JSONSerializer)
        return [job.id for job in queue.enqueue_many([Queue.prepare_data(func)] * count)]

    return Variant(name, [PYTHON, "-c", code, "{url}"], enqueue)


def flask_rq_variant(name: str) -> Variant:
    """``flask rq worker`` of Flask-RQ 1.0 (a new ``flask rq work-horse`` process per job).

    The app is the payments app with Flask-RQ on it (``bench_flaskrq_app``); its default
    (pickle) serializer, as its users get it.
    """
    command = [PYTHON, "-m", "flask", "--app", "bench_flaskrq_app:create_app", "rq", "worker"]

    def enqueue(conn: redis.Redis, count: int) -> list[str]:
        queue = Queue("default", connection=conn)
        return [job.id for job in queue.enqueue_many([Queue.prepare_data(NOOP)] * count)]

    return Variant(name, command, enqueue, serializer=DefaultSerializer)


# -- running them ---------------------------------------------------------------------------


@dataclass
class Batch:
    """What one batch measured."""

    jobs: int
    seconds: float  # first started_at to last ended_at
    cpu_seconds: float  # the worker's and its reaped children's CPU time in the batch
    machine_busy: float  # cores busy machine-wide during the batch (every process's work)

    @property
    def rate(self) -> float:
        """Jobs per second."""
        return self.jobs / self.seconds

    @property
    def cpu_ms_per_job(self) -> float:
        """CPU milliseconds per job (worker and work horses; not Redis)."""
        return self.cpu_seconds * 1000 / self.jobs


@dataclass
class Runner:
    """One long-lived worker process of a variant on its own database."""

    variant: Variant
    url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    jobs_run: int = 0  # jobs this worker finished so far
    batches: list[Batch] = field(default_factory=list)
    rss_after_warmup_kib: int = 0
    _conn: redis.Redis | None = None

    @property
    def conn(self) -> redis.Redis:
        """A client on this runner's database."""
        if self._conn is None:
            self._conn = redis.Redis.from_url(self.url)
        return self._conn

    def start(self) -> None:
        """Start the worker process (it then waits for jobs)."""
        command = [part.replace("{url}", self.url) for part in self.variant.command]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.log_path.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def run(self, count: int, timeout: float | None = None) -> Batch:
        """Enqueue ``count`` jobs, wait until the worker finished them, measure the batch."""
        cpu_before, machine_before = self.cpu_seconds(), machine_jiffies()
        ids = self.variant.enqueue(self.conn, count)
        # The finished registry is emptied after every batch (see _forget).
        self.wait_for(count, timeout or 60 + count)
        self.jobs_run += count
        time.sleep(0.05)  # let a fork worker reap its last horse, whose CPU time then counts
        cpu = self.cpu_seconds() - cpu_before
        busy, total = (a - b for a, b in zip(machine_jiffies(), machine_before, strict=True))
        jobs = Job.fetch_many(ids, connection=self.conn, serializer=self.variant.serializer)
        started = [job.started_at for job in jobs if job is not None and job.started_at]
        ended = [job.ended_at for job in jobs if job is not None and job.ended_at]
        if len(started) != count or len(ended) != count:
            raise RuntimeError(f"{self.variant.name}: jobs without timestamps:\n{self.log_tail()}")
        cores = os.cpu_count() or 1
        batch = Batch(count, (max(ended) - min(started)).total_seconds(), cpu, busy / total * cores)
        self.batches.append(batch)
        # Drop the finished jobs, so that every batch meets the same Redis.
        self._forget(ids)
        return batch

    def wait_for(self, finished: int, timeout: float) -> None:
        """Poll RQ's finished registry until it holds ``finished`` jobs (failures raise)."""
        finished_key = FinishedJobRegistry("default", connection=self.conn).key
        failed_key = FailedJobRegistry("default", connection=self.conn).key
        deadline = time.monotonic() + timeout
        while True:
            with self.conn.pipeline(transaction=False) as pipe:
                pipe.zcard(finished_key).zcard(failed_key)
                count, failed = pipe.execute()
            if failed:
                raise RuntimeError(f"{self.variant.name}: {failed} jobs failed:\n{self.log_tail()}")
            if count >= finished:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.variant.name} exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.variant.name}: timed out:\n{self.log_tail()}")
            time.sleep(0.01)

    def _forget(self, ids: Sequence[str]) -> None:
        finished_key = FinishedJobRegistry("default", connection=self.conn).key
        with self.conn.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.delete(f"rq:job:{job_id}", f"rq:results:{job_id}", f"rq:executions:{job_id}")
            pipe.zrem(finished_key, *ids)
            pipe.execute()

    def cpu_seconds(self) -> float:
        """CPU time of the worker process and of the children it has waited for."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        return (utime + stime + cutime + cstime) / _CLOCK_TICKS

    def rss_kib(self) -> int:
        """The worker process's resident set size (``VmRSS``), in KiB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/PID/status")

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL if it does not exit within 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._conn is not None:
            self._conn.close()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the worker's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from ``/proc/stat``."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # user .. steal (guest time is already in user)
    return total - idle, total


def start_runners(
    variants: Sequence[Variant], server_url: str, first_db: int, folder: Path
) -> list[Runner]:
    """Start a runner per variant, each on its own database, and run its warm-up jobs.

    The resident set size after the warm-up is kept (for the memory measurement).
    """
    from common import database, worker_environment

    runners = []
    try:
        for index, variant in enumerate(variants):
            url = database(server_url, first_db + index)
            home = folder / f"runner-{first_db + index}"
            home.mkdir(parents=True, exist_ok=True)
            runner = Runner(variant, url, worker_environment(url, home), home / "worker.log")
            runner.start()
            runners.append(runner)
        for runner in runners:
            runner.run(runner.variant.warmup, timeout=120 + 5 * runner.variant.warmup)
            runner.batches.clear()
            runner.rss_after_warmup_kib = runner.rss_kib()
    except BaseException:
        stop_runners(runners)
        raise
    return runners


def stop_runners(runners: Sequence[Runner]) -> None:
    """Stop every runner and empty its database."""
    from common import flush

    for runner in runners:
        runner.stop()
        flush(runner.url)
