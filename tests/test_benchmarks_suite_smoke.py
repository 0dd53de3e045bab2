"""The benchmark suite runs end to end (``--quick``) and prints its report; no timing asserts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The run's own bound (240 s below), not the suite's 120 s: on a loaded machine the quick
# suite, ten sections with a worker each, takes about two minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECTIONS = [
    "## Targets",
    "## 1. taskkit app-context no-op jobs vs bare RQ no-op jobs",
    "## 2. taskkit vs Flask-RQ 1.0's worker",
    "## 3. taskkit vs the seed's pattern",
    "## 4. Redis round trips and commands per job",
    "## 5. Enqueue: single and enqueue_many",
    "## 6. Loader",
    "## 7. Schedules",
    "## 8. --processes 2 vs 1",
    "## 9. Memory",
    "## 10. Workflows: starting a run, each step, a fan-in",
    "## 11. Flow-control keys: per-job cost",
    "## Profile: one fork work horse",
]


@pytest.mark.timeout(300)  # the quick suite alone takes ~2 min on 2 busy cores
def test_the_suite_runs_quick_and_prints_the_report(tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    # Its own private redis-server (the default): nothing shared is touched.
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    report = done.stdout
    assert report.startswith("# taskkit benchmarks\n")
    assert "Command: `python benchmarks/run.py --quick --output" in report
    for heading in SECTIONS:
        assert heading in report, heading
    for fact in ("| machine |", "| Python |", "| Redis server |", "| rq |", "| Flask |"):
        assert fact in report, fact
    # Flask-RQ is left to the full run, with the reason given.
    assert "Skipped: --quick" in report
    assert output.read_text(encoding="utf-8") == report
    # No section failed half-way: every target row has a verdict.
    rows = [line for line in report.splitlines() if line.startswith("| ") and " | " in line]
    verdicts = [
        row.rsplit("|", 2)[-2].strip()
        for row in rows
        if row.endswith(("met |", "MISSED |", "skipped |"))
    ]
    assert len(verdicts) >= 10
