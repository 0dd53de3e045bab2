"""What the benchmark modules share: the Redis they use, the workers' environment, the
benchmark jobs.yaml, statistics and the markdown the suite writes."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import redis

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
EXAMPLES = REPO_ROOT / "examples"
NOOP = "payments.jobs.noop"
PYTHON = sys.executable


# -- Redis ---------------------------------------------------------------------------------


@contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """The server URL to use: ``url`` as given, else a private ``redis-server`` of our own.

    With a given URL the suite uses databases 1-15 of it only if they are empty (see
    :func:`database`); the private server is started here and stopped afterwards.
    """
    if url:
        yield url
        return
    from taskkit.redis_server import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


def database(server_url: str, db: int) -> str:
    """``server_url`` pointing at database ``db``, which must be empty (it is flushed after)."""
    from taskkit.redis_server import redact_url, url_with_db

    url = url_with_db(server_url, db)
    conn = redis.Redis.from_url(url)
    try:
        if conn.dbsize():
            raise SystemExit(
                f"{redact_url(url)} is not empty: the benchmarks need empty databases 1-15 "
                "(or no --redis-url: a private redis-server is started)"
            )
    finally:
        conn.close()
    return url


def flush(url: str) -> None:
    """Empty the database at ``url`` (one the suite claimed)."""
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    conn.close()


# -- the workers' world ----------------------------------------------------------------------


def worker_environment(url: str, tmp: Path) -> dict[str, str]:
    """The environment of a worker subprocess on the database ``url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAYMENTS_")}
    for name in ("TASKKIT_CONFIG", "TASKKIT_EAGER", "TASKKIT_REDIS_URL", "FLASK_APP"):
        env.pop(name, None)
    env["REDIS_URL"] = url
    env["PAYMENTS_DATABASE_URL"] = f"sqlite:///{tmp / 'payments.sqlite'}"
    # The same import path for every worker: the example's package and the bench jobs.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(EXAMPLES), str(BENCHMARKS), env.get("PYTHONPATH")])
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def write_jobs_yaml(folder: Path) -> Path:
    """A jobs.yaml for the benchmarks: the payments app, its ``noop`` and ``hash_work``."""
    path = folder / "jobs.yaml"
    path.write_text(
        f"""\
# Written by benchmarks/common.py for one benchmark run.
version: 1
pythonpath: ["{EXAMPLES}", "{BENCHMARKS}"]
redis:
  url: ${{REDIS_URL}}
app:
  factory: payments.app:create_app
  kwargs: {{config_name: production}}
  server_name: payments.example.com
defaults:
  queue: default
  context: app
  timeout: 3m
  result_ttl: 1d
  failure_ttl: 7d
queues:
  default: {{}}
jobs:
  noop:
    func: payments.jobs:noop
  hash_work:
    func: bench_jobs:hash_work
""",
        encoding="utf-8",
    )
    return path


def taskkit_command(*args: str) -> list[str]:
    """``taskkit ARGS`` with this interpreter."""
    return [PYTHON, "-m", "taskkit", *args]


# -- statistics -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def alternating(variants: Sequence[str], round_number: int) -> Sequence[str]:
    """ABBA order: neither variant always goes first (warm caches, a busy neighbour)."""
    return variants if round_number % 2 == 0 else list(reversed(variants))


# -- what the suite reports -----------------------------------------------------------------


@dataclass
class Target:
    """One performance target: what was measured against what was asked."""

    what: str
    measured: str
    target: str
    met: bool | None  # None: not measured in this run (skipped)
    note: str = ""

    @property
    def verdict(self) -> str:
        """``met``, ``MISSED`` or ``skipped``."""
        return "skipped" if self.met is None else "met" if self.met else "MISSED"


@dataclass
class Section:
    """One part of the report: a title, markdown lines, and the targets it checked."""

    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Add a markdown table."""
        self.lines.append("| " + " | ".join(header) + " |")
        self.lines.append("| " + " | ".join("---" for _ in header) + " |")
        for row in rows:
            self.lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
        self.lines.append("")

    def say(self, text: str) -> None:
        """Add a paragraph."""
        self.lines.extend([text, ""])


def ratio_text(value: float) -> str:
    """A ratio as ``1.23x``."""
    return f"{value:.2f}x"


# -- the machine ----------------------------------------------------------------------------


def machine_facts(redis_url: str) -> list[tuple[str, str]]:
    """What the figures were measured on: machine, versions."""
    conn = redis.Redis.from_url(redis_url)
    try:
        redis_version = str(conn.info("server")["redis_version"])
    finally:
        conn.close()
    return [
        ("machine", f"{os.cpu_count()} CPUs (nproc {_nproc()}), {_cpu_model()}"),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("Redis server", redis_version),
        ("rq", _version("rq")),
        ("Flask", _version("flask")),
        ("redis-py", _version("redis")),
        ("Flask-SQLAlchemy", _version("flask-sqlalchemy")),
        ("Flask-RQ", _version("flask-rq")),
        ("taskkit", f"{_version('flask-taskkit')} ({_git_revision()})"),
    ]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _nproc() -> str:
    return str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _git_revision() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "no git"
