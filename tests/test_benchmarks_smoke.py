"""The benchmarks still run (their timings are for people to read, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.slow
def test_bench_loader_quick() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_loader.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"jobs.yaml: 50 jobs, 50 schedules, \d+ KiB; median of 2 runs", lines[0])
    steps = [line.split("  ")[0] for line in lines[2:-1]]
    assert steps == [
        "yaml.safe_load (pure Python)",
        "yaml.load, CSafeLoader (libyaml)",
        "taskkit parse_config",
        "taskkit.load (= validate)",
    ]
    assert lines[-1].startswith("target: taskkit.load under 1 s for this file: ")
