"""The Flask extension: TaskKit(app), init_app, eager settings, ``flask taskkit``."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from ops_support import cli_env, write_jobs_yaml
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from worker_support import PROBE_JOBS, REPO_ROOT

from taskkit import ConfigError, Registry
from taskkit import registry as registry_module
from taskkit.eager import EagerJob
from taskkit.flask import TaskKit
from taskkit.loader.cache import LoadCache
from taskkit.testing import use_redis
from taskkit.worker import TaskkitJob, prepare_process


def make_app(tmp_path: Path, **config: Any) -> Flask:
    from payments.app import create_app

    return create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'test.sqlite'}",
        TASKKIT_CONFIG=str(PROBE_JOBS),
        **config,
    )


@pytest.fixture
def app(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The payments app (testing config) on the probe jobs.yaml and the test Redis."""
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    sys.path.insert(0, str(REPO_ROOT / "examples"))
    app = make_app(tmp_path)
    with use_redis(app.extensions["taskkit"].registry, redis_url):
        yield app
    sys.path.remove(str(REPO_ROOT / "examples"))


def test_taskkit_registers_itself_and_enqueues_plain_rq_jobs(app: Flask) -> None:
    state = app.extensions["taskkit"]
    assert state.registry.path == PROBE_JOBS
    job = app.extensions["taskkit"].enqueue("report_app")
    assert job.get_status() == JobStatus.QUEUED
    assert Queue("default", connection=state.registry.connection).job_ids == [job.id]


def test_init_app_and_the_config_path_order(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("version: 1\njobs:\n  dump: {func: 'json:dumps'}\n", encoding="utf-8")

    tk = TaskKit()
    plain = Flask("plain")
    plain.config["TASKKIT_CONFIG"] = str(PROBE_JOBS)
    tk.init_app(plain)
    assert tk.registry.path == PROBE_JOBS  # from app.config
    assert TaskKit(Flask("explicit"), config=str(other)).registry.path == other  # config= wins
    monkeypatch.setenv("TASKKIT_CONFIG", str(other))
    assert TaskKit(Flask("from_env")).registry.path == other  # then $TASKKIT_CONFIG


@pytest.mark.parametrize(
    ("setting", "where"),
    [(None, "jobs.yaml"), ("conf/jobs.yaml", "conf/jobs.yaml"), ("../up.yaml", "../up.yaml")],
)
@pytest.mark.parametrize("layout", ["package", "module"])
def test_a_relative_config_path_is_read_from_the_project_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, where: str, layout: str
) -> None:
    """The project folder holds the app's package (or is the app module's own folder)."""
    project = tmp_path / "project"
    name = f"tk_{layout}_app_{abs(hash((setting, where))) % 10**6}"
    if layout == "package":
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(
            "from flask import Flask\napp = Flask(__name__)\n"
        )
    else:
        project.mkdir()
        (project / f"{name}.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (project / "conf").mkdir()
    for yaml_name in ("jobs.yaml", "conf/jobs.yaml", "../up.yaml"):
        (project / yaml_name).write_text("version: 1\njobs:\n  j: {func: 'json:loads'}\n", "utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "jobs.yaml").write_text("version: 1\n", encoding="utf-8")  # never read
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delenv("TASKKIT_CONFIG", raising=False)
    if setting is not None:
        monkeypatch.setenv("TASKKIT_CONFIG", setting)
    app = importlib.import_module(name).app

    registry = TaskKit(app).registry

    assert registry.path == project / where
    assert list(registry.jobs) == ["j"]


def test_a_missing_config_names_the_full_path_it_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKKIT_CONFIG", raising=False)
    with pytest.raises(ConfigError) as caught:
        TaskKit(Flask("myapp", root_path=str(tmp_path / "root")))
    assert str(caught.value).startswith(f"{tmp_path / 'root' / 'jobs.yaml'}: no such file (")


def test_the_extension_follows_the_current_app(app: Flask) -> None:
    tk = TaskKit()
    first, second = Flask("first"), Flask("second")
    first.config["TASKKIT_CONFIG"] = second.config["TASKKIT_CONFIG"] = str(PROBE_JOBS)
    tk.init_app(first)
    tk.init_app(second)
    with second.app_context():
        assert tk._state().app is second
    with pytest.raises(RuntimeError, match=r"call TaskKit\(app\) or tk.init_app\(app\)"):
        TaskKit().enqueue("noop")


def test_enqueue_in_through_the_extension_lands_in_the_scheduled_registry(app: Flask) -> None:
    state = app.extensions["taskkit"]
    tk = TaskKit()
    tk._app = app
    job = tk.enqueue_in(timedelta(minutes=1), "report_none")
    scheduled = ScheduledJobRegistry("default", connection=state.registry.connection)
    assert scheduled.get_job_ids() == [job.id]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"eager": True}, True),
        ({"config": {"TASKKIT_EAGER": True}}, True),
        ({"config": {"TASKKIT_EAGER": "0"}, "env": "1"}, False),  # the app's setting wins
        ({"env": "1"}, True),
        ({"eager": False, "env": "1"}, False),  # TaskKit(app, eager=False) wins over the env
        ({}, False),
    ],
)
def test_where_eager_mode_comes_from(
    app: Flask, monkeypatch: pytest.MonkeyPatch, how: dict[str, Any], expected: bool
) -> None:
    if "env" in how:
        monkeypatch.setenv("TASKKIT_EAGER", how["env"])
    other = Flask("other")
    other.config["TASKKIT_CONFIG"] = str(PROBE_JOBS)
    other.config.update(how.get("config", {}))
    tk = TaskKit(other, eager=how.get("eager"))
    # The same per-process registry as the app fixture's, so it sends to the test Redis.
    assert tk.registry is app.extensions["taskkit"].registry
    if expected:
        job = tk.enqueue("report_app")
        assert isinstance(job, EagerJob)
        assert job.return_value()["app_name"] == "other"  # ran at once, in the extension's app
        later = tk.enqueue_in(timedelta(hours=1), "report_none")
        assert later.get_status() == JobStatus.FINISHED  # eager runs delayed jobs at once too
    else:
        queued = tk.enqueue("report_app")
        assert queued.get_status() == JobStatus.QUEUED


def test_the_worker_app_reuses_the_registry_it_was_built_for(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """A factory that calls TaskKit(app) inside the worker loads nothing a second time."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    loads: list[Path] = []
    real_build = registry_module._registries.build

    def counting_build(file: Path) -> Registry:
        loads.append(file)
        return real_build(file)

    monkeypatch.setattr(registry_module, "_registries", LoadCache(counting_build))
    monkeypatch.setattr(TaskkitJob, "registry", None)
    monkeypatch.delenv("TASKKIT_CONFIG", raising=False)

    registry = registry_module.load(PROBE_JOBS)
    prepare_process(registry)  # what run-worker does: builds the app from the factory

    app = registry.process_app.built
    assert app is not None
    assert app.extensions["taskkit"].registry is registry
    assert len(loads) == 1
    assert os.environ["TASKKIT_CONFIG"] == str(PROBE_JOBS)


def flask_command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "flask"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "flask", *args]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("list", r"send_payment_receipt\s+emails\s+request"),
        ("validate", r"jobs.yaml: OK \(\d+ jobs, \d+ queues"),
    ],
)
def test_flask_taskkit_commands(command: str, expected: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "examples")}
    env.pop("TASKKIT_CONFIG", None)
    done = subprocess.run(
        flask_command("--app", "payments.app:create_app", "taskkit", command),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(expected, done.stdout)


@pytest.mark.slow
def test_flask_taskkit_runs_a_worker_and_requeues_a_failed_job(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payments app told (by its config) to use the ops jobs: no -c, no $TASKKIT_CONFIG."""
    config = write_jobs_yaml(tmp_path)
    elsewhere = tmp_path / "elsewhere"  # no ./jobs.yaml to fall back on
    elsewhere.mkdir()
    app = f"payments.app:create_app('production', TASKKIT_CONFIG={str(config)!r})"
    env = cli_env(REDIS_URL=redis_url, PYTHONPATH=str(REPO_ROOT / "examples"))

    def flask_taskkit(*args: str) -> str:
        done = subprocess.run(
            flask_command("--app", app, "taskkit", *args),
            env=env,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    monkeypatch.setenv("REDIS_URL", redis_url)
    registry = registry_module.load(config, cached=False)

    def job(job_id: str) -> Job:
        return Job.fetch(job_id, connection=registry.connection, serializer=registry.serializer)

    ping = flask_taskkit("enqueue", "ping", "value=hello").strip()
    flaky = registry.enqueue("fail_first_time", marker="flaky").id
    flask_taskkit("run-worker", "--burst")
    assert job(ping).get_status() == JobStatus.FINISHED
    assert job(ping).return_value() == "hello"
    assert job(flaky).get_status() == JobStatus.FAILED

    assert flask_taskkit("failed", "requeue", flaky) == "requeued 1 job\n"
    assert job(flaky).get_status() == JobStatus.QUEUED
    flask_taskkit("run-worker", "--burst")
    assert job(flaky).get_status() == JobStatus.FINISHED
    assert job(flaky).return_value() == "second time lucky"
    assert "FAILED (0)" in flask_taskkit("failed", "list")
    registry.connection.close()
