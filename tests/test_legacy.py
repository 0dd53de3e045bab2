"""``taskkit legacy convert``: pickled jobs queued by plain RQ before the switch run
under taskkit's context policy; an undeclared one is still refused, and nothing a
pickle names is run by the conversion.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import yaml
from rq import Queue
from rq.job import Job

MIGRATE_APPS = Path(__file__).parent / "apps" / "migrateapps"
TASKKIT = [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]


def write_config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "jobs.yaml"
    data = {
        "version": 1,
        "pythonpath": [str(MIGRATE_APPS)],
        "redis": {"url": redis_url},
        "app": {"factory": "legacyapp:create_app"},
        "queues": {"default": {}, "emails": {}},
        "jobs": {"note": {"func": "legacyapp:note", "queue": "emails", "context": "app"}},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def taskkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TASKKIT, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_pickled_jobs_of_declared_functions_run_in_their_context_and_others_are_refused(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    path = write_config(tmp_path, redis_url)
    out, marker = tmp_path / "notes.txt", tmp_path / "undeclared-ran"
    # What the app's old code did: plain RQ, pickle, functions by import path, any queue.
    plain = Queue("default", connection=redis_conn)
    first = plain.enqueue("legacyapp.note", str(out), 1, meta={"progress": 0.5})
    other = Queue("low", connection=redis_conn).enqueue("legacyapp.note", str(out), 2)
    delayed = plain.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), "legacyapp.note",
                               str(out), 3)  # fmt: skip
    stranger = plain.enqueue("legacyapp.undeclared", str(marker))

    dry = taskkit("legacy", "convert", "--dry-run", "-c", str(path))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "dry run: 3 to convert, 1 left"
    assert Job.fetch(first.id, connection=redis_conn).meta == {"progress": 0.5}  # still pickled

    done = taskkit("legacy", "convert", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert f"converted {first.id} (queue default) -> job note" in done.stdout
    assert (
        f"left      {stranger.id} (queue default): it calls 'legacyapp.undeclared', and "
        f"{path} does not declare it; a worker refuses it"
    ) in done.stdout
    assert done.stdout.splitlines()[-1] == "3 converted, 1 left"
    again = taskkit("legacy", "convert", "-c", str(path))
    assert again.stdout.splitlines()[-1] == "0 converted, 1 left"

    worker = taskkit("run-worker", "--burst", "--worker-class", "simple", "-c", str(path))
    assert worker.returncode == 0, worker.stderr
    # Run by the taskkit worker, in the app's context, same ids as before.
    assert sorted(out.read_text().splitlines()) == ["legacy-app 1", "legacy-app 2", "legacy-app 3"]
    json_jobs = {
        job_id: Job.fetch(job_id, connection=redis_conn, serializer="rq.serializers.JSONSerializer")
        for job_id in (first.id, other.id, delayed.id)
    }
    assert {job.get_status() for job in json_jobs.values()} == {"finished"}
    assert json_jobs[first.id].meta["progress"] == 0.5
    assert json_jobs[first.id].origin == "emails"

    assert not marker.exists()
    assert stranger.id in Queue("default", connection=redis_conn).failed_job_registry
    assert f"refused job {stranger.id}" in worker.stderr


def test_convert_never_runs_what_a_forged_pickle_names(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    marker = tmp_path / "pwned"

    class Forged:
        def __reduce__(self) -> tuple[Any, ...]:
            return (subprocess.call, (["touch", str(marker)],))

    data = pickle.dumps(("legacyapp.note", None, (Forged(), 1), {}))
    redis_conn.hset("rq:job:forged", mapping={"data": zlib.compress(data), "origin": "emails"})
    redis_conn.rpush("rq:queue:emails", "forged")
    done = taskkit("legacy", "convert", "-c", str(write_config(tmp_path, redis_url)))
    assert done.returncode == 0, done.stderr
    assert "left      forged (queue emails): its data is not plain values: it refers to " \
        "subprocess.call" in done.stdout  # fmt: skip
    assert not marker.exists()
    assert redis_conn.hget("rq:job:forged", "data") == zlib.compress(data)


def test_convert_with_a_pickle_jobs_yaml_says_there_is_nothing_to_do(
    tmp_path: Path, redis_url: str
) -> None:
    path = write_config(tmp_path, redis_url)
    path.write_text(path.read_text() + "serializer: pickle\n")
    done = taskkit("legacy", "convert", "-c", str(path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {path} uses serializer: pickle, so its workers read pickled jobs as they are "
        "(and run those that call a declared function); nothing to convert"
    ]
