"""taskkit's worker makes fewer Redis round trips than bare RQ's (counted, not timed).

A behaviour users rely on: running a job through taskkit (declared-job check, app
context, log line) costs no more Redis traffic per job than a bare RQ worker of the same
class, and less: its heartbeats go in one round trip and at most once a second, and it
does not write a state Redis already holds (taskkit/worker/outages.py). No command is sent more
often than bare RQ sends it, except the two HINCRBYs that count the job for /metrics
(taskkit/worker/metering.py), which ride in the transaction RQ sends when the job ends: commands,
not round trips. benchmarks/bench_roundtrips.py counts what redis-py sends, per job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_roundtrips.py"

pytestmark = pytest.mark.slow

METRICS_COMMANDS = {"HINCRBY": 2}
"""Per job: the job's count (by outcome and run time bucket) and its run time's sum."""


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_taskkit_workers_make_fewer_round_trips_than_bare_rq(
    redis_url: str, worker_class: str
) -> None:
    command = [sys.executable, str(BENCH), "--redis-url", redis_url, "--jobs", "4"]
    done = subprocess.run(
        [*command, "--worker-class", worker_class, "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    counts = json.loads(done.stdout)
    ours, theirs = counts[f"taskkit {worker_class}"], counts[f"bare RQ {worker_class}"]
    assert 0 < ours["round_trips"] <= theirs["round_trips"] - 5, (ours, theirs)
    more = {
        name: (sent, theirs["by_command"].get(name, 0))
        for name, sent in ours["by_command"].items()
        if sent > theirs["by_command"].get(name, 0) + METRICS_COMMANDS.get(name, 0)
    }
    assert not more, f"commands taskkit sends more often than bare RQ: {more}"
