"""The throughput benchmark runs (quick mode) and reports both variants; no timing asserts."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from worker_support import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_benchmark_runs_in_quick_mode(redis_url: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "bench_throughput.py"),
            "--quick",
            # The same server; the benchmark claims an empty database of its own on it.
            "--redis-url",
            redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for worker_class in ("simple", "fork"):
        assert re.search(rf"^{worker_class}\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+x", done.stdout, re.M)
    assert "taskkit" in done.stderr and "bare-rq" in done.stderr
