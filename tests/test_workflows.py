"""Workflows: jobs.yaml checks with file:line errors, starting runs, eager mode, the CLI.

The runs by real worker processes are in test_workflows_worker.py; here a run is worked
by an in-process burst worker where one is needed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq.registry import DeferredJobRegistry

import taskkit
from taskkit.cli import cli, main
from taskkit.errors import ConfigError, WorkflowError
from taskkit.registry import Registry
from taskkit.testing import run_burst_worker
from taskkit.workflows.runs import RUN_KEY_PREFIX

APPS = Path(__file__).parent / "apps" / "workflowapps"
WORKFLOW_JOBS = APPS / "jobs.yaml"
HEAD = f"""version: 1
pythonpath: [{json.dumps(str(APPS))}]
defaults: {{context: none}}
jobs:
  fetch_shard: {{func: wfjobs:fetch_shard}}
  merge_shards: {{func: wfjobs:merge_shards}}
  notify_ops: {{func: wfjobs:notify_ops}}
workflows:
  w:
    inputs: [day, shards]
    steps:
"""


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop("wfjobs", None)


@pytest.fixture
def taskkit_config_path() -> Path:
    return WORKFLOW_JOBS


# -- validation ------------------------------------------------------------------------------

BAD_STEPS = [
    pytest.param(
        "      s: {job: notify_ops}\n      t: {job: nope, after: [s]}\n",
        "job: nope",
        "workflows.w.steps.t.job: job 'nope' is not declared in jobs (declare it under jobs:)",
        id="unknown-job",
    ),
    pytest.param(
        "      s: {job: notify_ops, after: [fecth]}\n      fetch: {job: notify_ops}\n",
        "after: [fecth]",
        "workflows.w.steps.s.after.0: step 'fecth' is not a step of this workflow "
        "(did you mean 'fetch'?)",
        id="unknown-step",
    ),
    pytest.param(
        "      a: {job: notify_ops, after: [b]}\n      b: {job: notify_ops, after: [a]}\n",
        "a: {job",
        "workflows.w.steps.a.after: the steps wait for each other in a cycle: a -> b -> a "
        "(remove one of these after: entries)",
        id="cycle",
    ),
    pytest.param(
        "      f: {job: fetch_shard, each: item, in: shards}\n",
        "each: item",
        "workflows.w.steps.f.each: job fetch_shard(day: str, shard: str) -> str takes no "
        "parameter 'item' (its parameters: day, shard)",
        id="each-binding",
    ),
    pytest.param(
        "      f: {job: fetch_shard, each: shard, in: shards}\n"
        "      m: {job: merge_shards, after: [f], results: part}\n",
        "results: part",
        "workflows.w.steps.m.results: job merge_shards(day: str, parts: list[str | None]) -> str "
        "takes no parameter 'part' (did you mean 'parts'?)",
        id="results-binding",
    ),
    pytest.param(
        "      f: {job: fetch_shard}\n",
        "f: {job",
        "workflows.w.steps.f.job: job fetch_shard(day: str, shard: str) -> str: parameter "
        "'shard' gets no value (add shard to the workflow's inputs, or give it a default)",
        id="inputs-binding",
    ),
    pytest.param(
        "      a: {job: notify_ops}\n      m: {job: merge_shards, after: [a], results: parts}\n",
        "results: parts",
        "workflows.w.steps.m.results: results is a fan-in, but the steps it comes after ('a') "
        "are not fanned out (give the step it collects each: and in:, or remove results:)",
        id="fan-in-not-fanned",
    ),
    pytest.param(
        "      f: {job: fetch_shard, each: shard, in: shard_list}\n",
        "in: shard_list",
        "workflows.w.steps.f.in: input 'shard_list' is not declared in the workflow's inputs "
        "(did you mean 'shards'?)",
        id="in-not-an-input",
    ),
    pytest.param(
        "      f: {job: fetch_shard, each: shard}\n",
        "f: {job",
        "workflows.w.steps.f: each without in (a fan-out needs both: each: item, in: a_list_input)",
        id="each-without-in",
    ),
]


@pytest.mark.parametrize(("steps", "marker", "expected"), BAD_STEPS)
def test_each_workflow_mistake_is_a_problem_at_its_line(
    tmp_path: Path, steps: str, marker: str, expected: str
) -> None:
    text = HEAD + steps
    path = tmp_path / "jobs.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        taskkit.load(path, cached=False)
    problems = caught.value.problems
    assert {p.file for p in problems} == {str(path)}
    found = {str(p).split(": ", 1)[1]: p for p in problems}
    assert expected in found, "\n".join(found)
    problem = found[expected]
    assert problem.line == 1 + next(n for n, line in enumerate(text.splitlines()) if marker in line)


def test_the_cli_prints_a_workflow_mistake_as_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(HEAD + "      t: {job: nope}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["validate", "-c", str(path)])
    assert exited.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:12:16: ")
    assert "job 'nope' is not declared in jobs" in err[0]
    assert err[1] == "error: 1 problem in jobs.yaml"


# -- starting a run -----------------------------------------------------------------------------


def test_start_checks_the_workflow_and_its_inputs(taskkit_registry: Registry) -> None:
    with pytest.raises(WorkflowError, match="no workflow named 'nightly' in "):
        taskkit_registry.start_workflow("nightly", day="d")
    with pytest.raises(WorkflowError, match="unknown input 'dya'; did you mean 'day'"):
        taskkit_registry.start_workflow("nightly_report", dya="d", shards=[])
    with pytest.raises(WorkflowError, match="missing input 'shards'"):
        taskkit_registry.start_workflow("nightly_report", day="d")
    with pytest.raises(WorkflowError, match="input 'shards' is str, not a list"):
        taskkit_registry.start_workflow("nightly_report", day="d", shards="s1")
    with pytest.raises(WorkflowError, match="step 'fetch': job 'fetch_shard': argument 'day'"):
        taskkit_registry.start_workflow("nightly_report", day=object(), shards=["a"])
    assert taskkit_registry.connection.keys("*") == [], "a refused start writes nothing"


def test_a_run_is_enqueued_whole_on_rqs_dependencies(taskkit_registry: Registry) -> None:
    run = taskkit_registry.start_workflow("nightly_report", day="d", shards=["a", "b"])
    steps = {view.name: [job.status for job in view.jobs] for view in run.steps()}
    assert steps == {"fetch": ["queued", "queued"], "merge": ["deferred"], "notify": ["deferred"]}
    assert run.status() == "running"
    conn = taskkit_registry.connection
    assert 0 < conn.ttl(RUN_KEY_PREFIX + run.id) <= 3600, "the run keeps the workflow's ttl"
    merge = run.steps()[1].jobs[0].id
    assert 0 < conn.ttl(f"rq:job:{merge}") <= 3600, "a deferred step expires with the run"
    assert taskkit_registry.workflow_run(run.id).steps() == run.steps()


def test_a_run_worked_to_its_end_has_its_results_in_item_order(taskkit_registry: Registry) -> None:
    run = taskkit_registry.start_workflow("nightly_report", day="d", shards=["c", "a", "b"])
    run_burst_worker(taskkit_registry)
    assert run.status() == "finished"
    assert run.results() == {
        "fetch": ["d/c", "d/a", "d/b"],
        "merge": "d/c+d/a+d/b",
        "notify": "notified d",
    }


def test_an_empty_fan_out_gives_the_fan_in_an_empty_list(taskkit_registry: Registry) -> None:
    run = taskkit_registry.start_workflow("nightly_report", day="d", shards=[])
    run_burst_worker(taskkit_registry)
    assert run.status() == "finished"
    assert run.results() == {"fetch": [], "merge": "", "notify": "notified d"}


def test_a_step_after_a_failed_one_is_skipped_and_nothing_stays_deferred(
    taskkit_registry: Registry,
) -> None:
    run = taskkit_registry.start_workflow("nightly_report", day="d", shards=["a", "bad"])
    run_burst_worker(taskkit_registry)
    assert run.status() == "failed"
    states = {view.name: [(j.status, j.note) for j in view.jobs] for view in run.steps()}
    assert states == {
        "fetch": [("finished", None), ("failed", None)],
        "merge": [("skipped", "step 'fetch' failed")],
        "notify": [("finished", None)],
    }
    conn = taskkit_registry.connection
    for queue in ("default", "other"):
        assert DeferredJobRegistry(queue, connection=conn).get_job_ids() == []


def test_a_forged_step_meta_fails_its_job_only(taskkit_registry: Registry) -> None:
    job = taskkit_registry._create(
        taskkit_registry.job("notify_ops"),
        (),
        {"day": "d"},
        meta={"taskkit_job": "notify_ops", "taskkit_step": {"run": "x y"}},
    )
    taskkit_registry.queue("default").enqueue_job(job)
    outcome = run_burst_worker(taskkit_registry)
    assert (outcome.finished, outcome.failed) == (0, 1)
    assert "workflow step meta is malformed" in (job.latest_result().exc_string or "")


# -- eager mode -------------------------------------------------------------------------------


def test_eager_mode_runs_the_whole_workflow_in_order_in_the_caller(
    taskkit_registry: Registry,
) -> None:
    taskkit_registry.eager = True
    conn = taskkit_registry.connection
    run = taskkit_registry.start_workflow("nightly_report", day="d", shards=["b", "bad", "a"])
    calls = [json.loads(c)[:-1] for c in conn.lrange("wf:calls", 0, -1)]
    assert calls == [["fetch", "d", "b"], ["fetch", "d", "a"], ["notify", "d"]]
    assert run.status() == "failed"
    assert run.results() == {"fetch": ["d/b", None, "d/a"], "merge": None, "notify": "notified d"}
    assert [j.status for view in run.steps() for j in view.jobs] == [
        "finished",
        "failed",
        "finished",
        "skipped",
        "finished",
    ]
    good = taskkit_registry.start_workflow("nightly_report", day="d", shards=["x"])
    assert (good.status(), good.results()["merge"]) == ("finished", "d/x")
    assert [k for k in conn.keys("*") if not k.startswith(b"wf:")] == [], "eager writes nothing"


# -- the command line --------------------------------------------------------------------------


def test_workflows_start_show_and_list(taskkit_registry: Registry) -> None:
    runner = CliRunner()
    config = ["-c", str(WORKFLOW_JOBS)]
    started = runner.invoke(
        cli, ["workflows", "start", *config, "nightly_report", "day=d", 'shards=["a","b"]']
    )
    assert started.exit_code == 0, started.output
    run_id = started.output.strip()
    run_burst_worker(taskkit_registry)
    shown = runner.invoke(cli, ["workflows", "show", *config, run_id])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"run {run_id}  workflow nightly_report  finished"
    assert any(line.split()[:3] == ["fetch", "fetch_shard", "2"] for line in lines)
    assert sum(" finished " in f"{line} " for line in lines) == 5
    listed = runner.invoke(cli, ["workflows", "list", *config])
    assert listed.exit_code == 0, listed.output
    assert any(run_id in line and "finished" in line for line in listed.output.splitlines())


def test_workflows_commands_print_one_line_errors(
    capsys: pytest.CaptureFixture[str], taskkit_registry: Registry
) -> None:
    for args, message in [
        (["start", "nope"], "error: no workflow named 'nope'"),
        (
            ["start", "chain", "dya=1"],
            "error: workflow 'chain': unknown input 'dya'; did you mean 'day'?",
        ),
        (["show", "0123abcd"], "error: no workflow run '0123abcd' in Redis"),
        (["show", "../x"], "error: no workflow run '../x' in Redis"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["workflows", args[0], "-c", str(WORKFLOW_JOBS), *args[1:]])
        assert exited.value.code == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(message), err


def test_the_extension_starts_runs_and_eager_runs_in_the_app(
    taskkit_registry: Registry, redis_conn: redis.Redis
) -> None:
    from flask import Flask

    from taskkit.flask import TaskKit

    app = Flask("wf")
    tk = TaskKit(app, config=str(WORKFLOW_JOBS))
    run = tk.start_workflow("chain", day="d")
    assert run.status() == "running"
    eager = TaskKit(Flask("wf2"), config=str(WORKFLOW_JOBS), eager=True)
    assert eager.start_workflow("chain", day="e").results() == {
        "first": "notified e",
        "second": "notified e",
    }
