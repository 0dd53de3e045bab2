"""The dashboard's Workflows pages with Flask's test client, on runs a real worker ran."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from taskkit.dashboard import blueprint
from taskkit.registry import Registry, load
from taskkit.testing import run_burst_worker

WORKFLOW_JOBS = Path(__file__).parent / "apps" / "workflowapps" / "jobs.yaml"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def registry(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("TASKKIT_REDIS_URL", raising=False)
    monkeypatch.delenv("TASKKIT_EAGER", raising=False)
    return load(WORKFLOW_JOBS, cached=False)


@pytest.fixture
def client(registry: Registry) -> Iterator[FlaskClient]:
    app = Flask("host")
    app.secret_key = "test-secret"
    app.register_blueprint(blueprint(auth=lambda: True, registry=registry), url_prefix="/ops")
    with app.test_client() as client:
        yield client


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def rows(html: str) -> list[str]:
    """Each table body row's text, tags and spacing removed."""
    found = [row for row in re.findall(r"<tr>(.*?)</tr>", html, re.S) if "<td" in row]
    return [" ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in found]


def test_the_workflows_page_lists_recent_runs_with_their_status(
    registry: Registry, client: FlaskClient
) -> None:
    failed = registry.start_workflow("nightly_report", day="d1", shards=["a", "bad"])
    run_burst_worker(registry, ["default", "other"])
    running = registry.start_workflow("chain", day="d2")

    html = page(client, "/ops/workflows")
    listed = rows(html)
    assert len(listed) == 2
    assert listed[0].startswith(running.id[:8]) and "chain running" in listed[0]
    assert listed[1].startswith(failed.id[:8]) and "nightly_report failed" in listed[1]
    assert "4 / 4" in listed[1] and "0 / 2" in listed[0]  # jobs ended / jobs
    assert f'href="/ops/workflows/runs/{failed.id}"' in html
    assert 'aria-current="page">Workflows' in html


def test_a_run_page_shows_each_steps_jobs_status_and_timing_with_links(
    registry: Registry, client: FlaskClient
) -> None:
    run = registry.start_workflow("nightly_report", day="d1", shards=["a", "bad"])
    run_burst_worker(registry, ["default", "other"])

    html = page(client, f"/ops/workflows/runs/{run.id}")
    assert "nightly_report" in html and run.id in html
    assert "failed" in html.split("</h2>", 1)[1].split("</p>", 1)[0]
    listed = rows(html)
    ids = [job.id for view in run.steps() for job in view.jobs]
    assert len(listed) == len(ids) == 4
    assert listed[0].startswith(f"fetch fetch_shard · 2 items {ids[0]} finished")
    assert listed[1].startswith(f"{ids[1]} failed")
    assert listed[2].startswith(f"merge merge_shards {ids[2]} skipped step 'fetch' failed")
    assert listed[3].startswith(f"notify notify_ops {ids[3]} finished")
    for job_id in ids:
        assert f'href="/ops/jobs/{job_id}"' in html
    assert re.search(r"finished [^|]*?ago \S+ m?s", listed[0]), listed[0]  # started, took
    assert page(client, f"/ops/jobs/{ids[1]}")  # the link leads to the job page
    # A run that is not (or no longer) in Redis, and what is no run id at all.
    page(client, "/ops/workflows/runs/0123456789abcdef", status=404)
    page(client, "/ops/workflows/runs/not-a-run..", status=404)


def test_run_now_of_a_workflow_schedule_starts_a_run_the_schedules_page_links_to(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = WORKFLOW_JOBS.parent
    text = WORKFLOW_JOBS.read_text().replace("pythonpath: [.]", f'pythonpath: ["{here}"]')
    path = tmp_path / "jobs.yaml"
    schedule = "  nightly: {workflow: chain, every: 1h, kwargs: {day: d}}\n"
    path.write_text(text + "schedules:\n" + schedule)
    monkeypatch.setenv("REDIS_URL", redis_url)
    registry = load(path, cached=False)
    app = Flask("host")
    app.secret_key = "test-secret"
    app.register_blueprint(blueprint(auth=lambda: True, registry=registry), url_prefix="/ops")
    with app.test_client() as client:
        token = CSRF.search(page(client, "/ops/schedules"))
        assert token is not None
        done = client.post(
            "/ops/schedules/nightly/run", data={"csrf_token": token.group(1)}, follow_redirects=True
        )
        html = done.get_data(as_text=True)
    [run] = re.findall(r"started run ([0-9a-f]{32})", html)
    assert registry.workflow_run(run).workflow == "chain"
    assert f'href="/ops/workflows/runs/{run}">run {run[:8]}</a>' in html
