"""The README's first command: examples/quickstart.py runs the example end to end.

(``bash examples/quickstart.sh`` only adds a venv and ``pip install`` around it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"

pytestmark = pytest.mark.slow


def run_quickstart(redis_url: str) -> subprocess.CompletedProcess[str]:
    """``python examples/quickstart.py`` with ``REDIS_URL`` and none of taskkit's variables."""
    env = {**os.environ, "REDIS_URL": redis_url}
    for name in ("TASKKIT_CONFIG", "TASKKIT_EAGER", "TASKKIT_REDIS_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(QUICKSTART)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_quickstart_runs_the_example_and_leaves_a_given_redis_alone(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    redis_conn.set("someone-elses-key", "kept")
    done = run_quickstart(redis_url)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "receipts written by the jobs: 6" in done.stdout
    assert "built the Flask app 1 time(s), not once per job" in done.stdout
    assert " ok" in done.stdout and " failed" not in done.stdout
    assert redis_conn.get("someone-elses-key") == b"kept"


def test_the_quickstart_starts_a_throwaway_redis_when_none_answers() -> None:
    """A machine with no Redis: REDIS_URL names a port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed; nothing listens on it
    done = run_quickstart(f"redis://127.0.0.1:{port}/0")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.startswith("redis: started a throwaway redis-server at redis://127.0.0.1:")
    assert "receipts written by the jobs: 6" in done.stdout
