"""benchmarks/bench_schedules.py still runs (``--quick``); no timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_schedules.py"


def test_bench_schedules_quick_runs_and_reports(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--redis-url", redis_url, "--json", str(out)],
        capture_output=True,
        timeout=90,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert "fire lateness" in output
    assert "sync of 100 schedules" in output

    figures = json.loads(out.read_text())
    lateness, cost = figures["lateness"], figures["sync"]
    assert lateness["jobs"] > 0
    assert lateness["duplicates"] == 0
    assert {"p50_ms", "p99_ms", "max_ms"} <= set(lateness)
    assert cost["first"]["changes"] == {"create": 100}
    assert cost["noop"]["changes"] == {"unchanged": 100}
    assert cost["first"]["round_trips"] > 0
    assert redis_conn.dbsize() == 0  # it cleans up after itself


def test_bench_schedules_refuses_a_database_with_keys(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    redis_conn.set("someone-elses", "data")
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--redis-url", redis_url],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert b"is not empty" in result.stderr
    assert redis_conn.get("someone-elses") == b"data"
