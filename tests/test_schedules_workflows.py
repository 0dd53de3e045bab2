"""Schedules that name a workflow: checked at load, each tick starts one run (real Redis,
time injected as in tests/test_schedules.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from taskkit.cli import cli
from taskkit.errors import ConfigError, ScheduleError
from taskkit.registry import Registry, load
from taskkit.schedules import STATE_KEY, Scheduler, run_now, sync
from taskkit.testing import run_burst_worker
from taskkit.workflows.runs import RUN_KEY_PREFIX, RUNS_KEY

APPS = Path(__file__).parent / "apps"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
HEAD = f"""\
version: 1
pythonpath: ["{APPS}"]
redis: {{url: "REDIS"}}
jobs:
  tick: {{func: "schedjobs:tick"}}
workflows:
  fan:
    inputs: [ns]
    steps:
      each: {{job: tick, each: n, in: ns}}
      after: {{job: tick, after: [each]}}
schedules:
"""
NIGHTLY = "  nightly: {workflow: fan, every: 1m, kwargs: {ns: [1, 2]}}\n"


def configure(tmp_path: Path, redis_url: str, schedules: str = NIGHTLY) -> Registry:
    path = tmp_path / "jobs.yaml"
    path.write_text(HEAD.replace("REDIS", redis_url) + schedules, encoding="utf-8")
    return load(path, cached=False)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def state(conn: redis.Redis, name: str) -> dict[str, Any]:
    raw = conn.hget(STATE_KEY, name)
    assert raw is not None
    return dict(json.loads(raw))


def test_a_tick_starts_one_run_and_overlap_skip_waits_for_the_run_to_end(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url)
    sync(registry, now=T0)
    scheduler = Scheduler(registry)

    [first] = scheduler.tick(at(60))
    assert first.outcome == "enqueued"
    run = registry.workflow_run(str(first.job_id))
    assert run.workflow == "fan"
    record = redis_conn.hgetall(RUN_KEY_PREFIX + run.id)
    assert record[b"taskkit_schedule"] == b"nightly"
    assert record[b"taskkit_tick"] == at(60).isoformat().encode()
    assert [len(view.jobs) for view in run.steps()] == [2, 1]
    assert len(registry.queue("default").get_job_ids()) == 2  # the fan-out; "after" waits
    assert state(redis_conn, "nightly")["run_id"] == run.id

    # The run has not ended: the next ticks are skipped, and still point at it.
    assert [t.outcome for t in scheduler.tick(at(120))] == ["skipped-overlap"]
    assert state(redis_conn, "nightly")["run_id"] == run.id

    run_burst_worker(registry)
    assert run.status() == "finished"
    [second] = scheduler.tick(at(180))
    assert second.outcome == "enqueued"
    assert second.job_id != run.id
    assert redis_conn.zcard(RUNS_KEY) == 2


def test_a_tick_claimed_by_another_scheduler_starts_no_second_run(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url)
    sync(registry, now=T0)
    first, second = Scheduler(registry), Scheduler(configure(tmp_path, redis_url))
    [due] = second.due(at(60))  # read before the other one fires it

    assert [t.outcome for t in first.tick(at(60))] == ["enqueued"]
    assert second.fire(due, at(60)).outcome == "lost-race"
    assert redis_conn.zcard(RUNS_KEY) == 1
    assert len(registry.queue("default").get_job_ids()) == 2


def test_run_now_starts_a_run_by_hand_and_refuses_a_second_while_it_runs(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    registry = configure(tmp_path, redis_url)
    sync(registry, now=T0)
    run_id = run_now(registry, "nightly", now=at(10))
    assert registry.workflow_run(run_id).status() == "running"
    with pytest.raises(ScheduleError, match=rf"its last run \(run {run_id}\) is still queued"):
        run_now(registry, "nightly", now=at(20))
    forced = run_now(registry, "nightly", force=True, now=at(30))
    assert forced != run_id
    assert state(redis_conn, "nightly")["run_id"] == forced
    assert redis_conn.hget(RUN_KEY_PREFIX + forced, "taskkit_tick") == b"run by hand"


def test_list_and_status_name_the_workflow(tmp_path: Path, redis_url: str) -> None:
    registry = configure(tmp_path, redis_url)
    sync(registry, now=T0)
    Scheduler(registry).tick(at(60))
    runner = CliRunner()
    listed = runner.invoke(cli, ["schedules", "list", "-c", str(registry.path)])
    assert listed.exit_code == 0, listed.output
    assert "nightly  [active]  workflow=fan  every 1m" in listed.output
    status = runner.invoke(cli, ["status", "-c", str(registry.path), "--json"])
    assert status.exit_code == 0, status.output
    [schedule] = json.loads(status.output)["schedules"]
    assert schedule["job"] == "workflow:fan"


BAD = [
    pytest.param(
        "  s: {job: tick, workflow: fan, every: 1m, kwargs: {ns: []}}\n",
        "schedules.s: a schedule names exactly one of job, workflow (found both) (keep one)",
        id="both",
    ),
    pytest.param(
        "  s: {workflow: fna, every: 1m}\n",
        "schedules.s.workflow: workflow 'fna' is not declared in workflows (did you mean 'fan'?)",
        id="unknown-workflow",
    ),
    pytest.param(
        "  s: {workflow: fan, every: 1m, kwargs: {ns: [1], nss: [2]}}\n",
        "schedules.s.kwargs.nss: 'nss' is not an input of the workflow (did you mean 'ns'?)",
        id="unknown-input",
    ),
    pytest.param(
        "  s: {workflow: fan, every: 1m}\n",
        "schedules.s.workflow: the workflow's input 'ns' gets no value (give every input "
        "under kwargs: ns)",
        id="missing-input",
    ),
    pytest.param(
        "  s: {workflow: fan, every: 1m, kwargs: {ns: 3}}\n",
        "schedules.s.kwargs.ns: input 'ns' is int, not a list (step 'each' runs once per item "
        "of it; write a list: [a, b])",
        id="not-a-list",
    ),
    pytest.param(
        "  s: {workflow: fan, every: 1m, args: [[1]]}\n",
        "schedules.s: a workflow takes its inputs as keywords (move args: into kwargs:, by input "
        "name)",
        id="args",
    ),
]


@pytest.mark.parametrize(("schedule", "expected"), BAD)
def test_each_mistake_of_a_workflow_schedule_is_a_problem_at_its_line(
    tmp_path: Path, schedule: str, expected: str
) -> None:
    path = tmp_path / "jobs.yaml"
    text = HEAD.replace("REDIS", "redis://127.0.0.1:1/0") + schedule
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path, cached=False)
    found = {str(p).split(": ", 1)[1]: p for p in caught.value.problems}
    assert expected in found, "\n".join(found)
    assert found[expected].line == len(text.splitlines()), "on the schedule's own line"


def test_a_schedule_naming_a_broken_workflow_is_not_reported_twice(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    text = HEAD.replace("REDIS", "redis://127.0.0.1:1/0") + NIGHTLY
    text = text.replace("    inputs: [ns]\n", "    inputs: [ns]\n    tll: 1d\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path, cached=False)
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 1, messages
    assert "tll" in messages[0]
