"""benchmarks/bench_workflows.py still runs (``--quick``); no timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_workflows.py"

pytestmark = pytest.mark.slow


def test_bench_workflows_quick_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    # Its own private redis-server (the default): the command counts are its alone.
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| start a fan-out of 10 items" in result.stdout
    assert "| a chain of 5 no-op steps vs 5 no-op jobs" in result.stdout

    figures = json.loads(out.read_text())
    for part in ("start", "chain", "fan_in"):
        assert figures[part]["ratio"] > 0, part
    assert figures["start"]["workflow_round_trips"] <= 2
    # A fan-in reads one pending sibling per item that ends, not every sibling (9 here).
    assert figures["fan_in"]["workflow_hget_per_item"] <= 4
