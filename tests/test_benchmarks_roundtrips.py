"""taskkit's worker makes no Redis round trips over bare RQ's (counted, not timed).

A behaviour users rely on: running a job through taskkit (declared-job check, app
context, log line) costs the same Redis traffic per job as a bare RQ worker of the same
class. benchmarks/bench_roundtrips.py counts what redis-py sends, per job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_roundtrips.py"

pytestmark = pytest.mark.slow


def test_taskkit_simple_worker_makes_no_round_trips_over_bare_rq(redis_url: str) -> None:
    command = [sys.executable, str(BENCH), "--redis-url", redis_url, "--jobs", "4"]
    done = subprocess.run(
        [*command, "--worker-class", "simple", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    counts = json.loads(done.stdout)
    ours, theirs = counts["taskkit simple"], counts["bare RQ simple"]
    assert ours["round_trips"] > 0
    assert ours["round_trips"] == theirs["round_trips"]
    assert ours["by_command"] == theirs["by_command"]
