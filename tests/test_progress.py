"""Job handles: fetch with the right serializer, progress from a fork worker and eager mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from ops_support import poll, write_jobs_yaml
from rq.job import Job
from worker_support import WorkerCli

import taskkit
from taskkit.cli import cli
from taskkit.progress import PROGRESS_KEY
from taskkit.registry import META_KEY, Registry, load

EXTRA_JOBS = """\
  report_progress: {func: "opsjobs:report_progress"}
  count_with_progress: {func: "opsjobs:count_with_progress"}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_jobs_yaml(tmp_path, extra_jobs=EXTRA_JOBS)


@pytest.fixture
def registry(config: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("TASKKIT_REDIS_URL", raising=False)
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    return load(config, cached=False)


def test_fetch_reads_a_json_job_that_rqs_default_fetch_cannot(registry: Registry) -> None:
    job = registry.enqueue("ping", value="x")

    # RQ's own fetch reads with pickle: the JSON meta comes back as an opaque blob.
    assert "unserialized" in Job.fetch(job.id, connection=registry.connection).meta
    fetched = registry.fetch(job.id)
    assert fetched is not None
    assert fetched.meta[META_KEY] == "ping"
    assert fetched.kwargs == {"value": "x"}
    assert fetched.get_status() == "queued"
    assert taskkit.progress_of(fetched) is None


@pytest.mark.parametrize("job_id", ["no-such-job", "bad.id", "../etc", ""])
def test_fetch_of_a_missing_or_invalid_id_is_none(registry: Registry, job_id: str) -> None:
    assert registry.fetch(job_id) is None


@pytest.mark.slow
def test_progress_from_a_fork_worker_keeps_other_meta_keys(
    registry: Registry, config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    job = registry.enqueue("report_progress", key="go")
    worker = worker_cli.start("run-worker", "-c", str(config), "--burst", "--worker-class", "fork")
    poll(lambda: redis_conn.exists("go:running"), what="the job to report half way")

    seen = registry.fetch(job.id)
    assert seen is not None
    progress = taskkit.progress_of(seen)
    assert progress is not None and (progress.fraction, progress.message) == (0.5, "half way")
    # The web side adds a key of its own while the job runs: the job must not clobber it.
    seen.meta["requested_by"] = "alice"
    seen.save_meta()
    status = CliRunner().invoke(cli, ["status", "-c", str(config), "--json"])
    assert status.exit_code == 0, status.output
    (running,) = [w for w in json.loads(status.output)["workers"] if w["current_job"]]
    assert running["current_job_progress"] == "50% half way"

    redis_conn.set("go", 1)
    assert worker.wait(timeout=60) == 0
    done = registry.fetch(job.id)
    assert done is not None and done.get_status() == "finished"
    assert done.meta["requested_by"] == "alice"
    assert done.meta[PROGRESS_KEY]["fraction"] == 1.0
    assert str(taskkit.progress_of(done)) == "100% done"


@pytest.mark.slow
def test_failed_show_tells_how_far_the_job_got(
    registry: Registry, config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    redis_conn.set("go", 1)
    job = registry.enqueue("report_progress", key="go", fail=True)
    done = worker_cli.run("run-worker", "-c", str(config), "--burst", "--worker-class", "fork")
    assert done.returncode == 0, done.stderr

    shown = worker_cli.run("failed", "show", "-c", str(config), job.id)
    assert shown.returncode == 0, shown.stderr
    assert "progress: 50% half way (reported " in shown.stdout
    as_json = worker_cli.run("failed", "show", "-c", str(config), job.id, "--json")
    assert json.loads(as_json.stdout)["progress"]["fraction"] == 0.5


def test_eager_jobs_have_a_current_job_and_their_progress(registry: Registry) -> None:
    registry.eager = True
    job = registry.enqueue("count_with_progress", total=3)

    assert job.return_value() == job.id  # get_current_job() returned this very job
    progress = taskkit.progress_of(job)
    assert progress is not None and (progress.fraction, progress.message) == (1.0, "3 of 3")
    assert job.meta[META_KEY] == "count_with_progress"  # other meta keys stay
    assert registry.fetch(job.id) is job  # a web view in eager mode finds it without Redis


def test_progress_outside_a_job_or_out_of_range_is_an_error(registry: Registry) -> None:
    with pytest.raises(taskkit.TaskkitError, match="outside a job"):
        taskkit.progress(0.5)
    registry.eager = True
    with pytest.raises(ValueError, match="from 0 to 1"):
        _bad_progress(registry)


def _bad_progress(registry: Registry) -> None:
    from taskkit.progress import current_job

    job = registry.enqueue("ping")
    with current_job(job):
        taskkit.progress(1.5)
