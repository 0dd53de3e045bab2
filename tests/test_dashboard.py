"""The dashboard with Flask's test client: every page and action, auth, CSRF, secrets.

Actions are checked in Redis (what RQ and ``taskkit`` see), not in the page that follows.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from ops_support import write_jobs_yaml
from rq.job import Job
from worker_support import WorkerCli, wait_for

from taskkit import queues, schedules
from taskkit.dashboard import blueprint
from taskkit.dashboard.filters import ago, span
from taskkit.dashboard.server import check_binding, create_app, is_loopback
from taskkit.errors import DashboardError
from taskkit.flask import TaskKit
from taskkit.registry import Registry, load
from taskkit.testing import run_burst_worker

SECRETS = ("hunter22", "k-123456", "tok-abcdef")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Door:
    """An ``auth`` callable a test opens and closes."""

    def __init__(self) -> None:
        self.open = True

    def __call__(self) -> bool:
        return self.open


@pytest.fixture
def door() -> Door:
    return Door()


@pytest.fixture
def app(ops: Registry, door: Door) -> Flask:
    app = Flask("host")
    app.secret_key = "test-secret"
    app.register_blueprint(blueprint(auth=door, registry=ops), url_prefix="/ops")
    return app


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def post(client: FlaskClient, url: str, status: int = 303, **form: str) -> str:
    """POST ``form`` with the CSRF token of the overview, as the page's own forms do."""
    token = CSRF.search(page(client, "/ops/"))
    assert token is not None
    response = client.post(url, data={"csrf_token": token.group(1), **form})
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.headers.get("Location", "")


def failed_login(ops: Registry) -> Job:
    job = ops.enqueue("login", user="bob", password="hunter22", api_key="k-123456")
    run_burst_worker(ops)
    return job


# -- pages ------------------------------------------------------------------------------------


def test_the_overview_shows_queues_workers_schedules_and_failures(
    ops: Registry, client: FlaskClient
) -> None:
    failed = failed_login(ops)
    ops.enqueue("ping", value="waiting")
    queues.pause(ops, "default")
    schedules.sync(ops)

    html = page(client, "/ops/")

    assert re.search(r'href="/ops/queues/default">default</a>\s*<span class="badge paused">', html)
    assert "Resume</button>" in html and "Pause</button>" in html
    assert "hourly-ping" in html and "every 1h" in html
    assert f'href="/ops/jobs/{failed.id}"' in html
    assert "PermissionError: login refused for bob with password &#39;***&#39;" in html
    assert "No worker is running" in html
    assert not [s for s in SECRETS if s in html]


def test_a_queue_page_lists_its_jobs_by_state_a_page_at_a_time(
    ops: Registry, client: FlaskClient
) -> None:
    jobs = [ops.enqueue("needs_flag", flag=f"f{i}", token="tok-abcdef") for i in range(30)]

    first = page(client, "/ops/queues/default")
    second = page(client, "/ops/queues/default?state=queued&page=2")

    assert first.count('class="badge queued"') == 25
    assert second.count('class="badge queued"') == 5
    assert "page 1 of 2" in first
    assert jobs[0].id in first and jobs[29].id in second
    assert "needs_flag(flag=&#39;f0&#39;, token=&#39;***&#39;)" in first
    assert "tok-abcdef" not in first + second
    run_burst_worker(ops)
    assert page(client, "/ops/queues/default?state=failed").count('class="badge failed"') == 25
    page(client, "/ops/queues/nope", 404)
    page(client, "/ops/queues/default?state=lost", 404)


def test_a_job_page_shows_arguments_with_secrets_hidden_and_the_exception(
    ops: Registry, client: FlaskClient
) -> None:
    job = failed_login(ops)
    html = page(client, f"/ops/jobs/{job.id}")
    assert ">login</span>" in html
    assert 'class="badge failed"' in html
    assert "&#34;password&#34;: &#34;***&#34;" in html
    assert "&#34;api_key&#34;: &#34;***&#34;" in html
    assert "PermissionError: login refused for bob with password &#39;***&#39;" in html
    assert "Traceback" in html
    assert "retries left" in html
    assert not [s for s in SECRETS if s in html]
    page(client, "/ops/jobs/no-such-job", 404)
    page(client, "/ops/jobs/bad.id", 404)


def test_failed_and_schedules_pages(ops: Registry, client: FlaskClient) -> None:
    job = failed_login(ops)
    html = page(client, "/ops/failed")
    assert "1, latest first" in html and job.id[:8] in html
    assert "Requeue all" in html and "Delete all" in html
    schedules.sync(ops)
    html = page(client, "/ops/schedules")
    assert "hourly-ping" in html and "Run now</button>" in html


# -- actions ----------------------------------------------------------------------------------


def test_requeue_and_delete_one_or_all_failed_jobs(ops: Registry, client: FlaskClient) -> None:
    first, second, third = (failed_login(ops) for _ in range(3))
    failed_key = ops.queue("high").failed_job_registry

    post(client, "/ops/failed/requeue", job_id=first.id)
    assert ops.queue("high").get_job_ids() == [first.id]
    assert first.id not in failed_key.get_job_ids()

    post(client, "/ops/failed/delete", job_id=second.id)
    assert not ops.connection.exists(Job.key_for(second.id))
    assert failed_key.get_job_ids() == [third.id]

    run_burst_worker(ops)  # first fails again
    location = post(client, "/ops/failed/requeue", all="1")
    assert location == "/ops/failed"
    assert sorted(ops.queue("high").get_job_ids()) == sorted([first.id, third.id])
    run_burst_worker(ops)
    post(client, "/ops/failed/delete", all="1")
    assert failed_key.count == 0
    assert "Deleted 2 jobs" in page(client, "/ops/failed")


def test_pause_and_resume_a_queue(ops: Registry, client: FlaskClient) -> None:
    location = post(client, "/ops/queues/default/pause", next="/ops/queues/default")
    assert location == "/ops/queues/default"
    assert queues.is_paused(ops, "default")
    assert "Paused queue default" in page(client, "/ops/queues/default")
    post(client, "/ops/queues/default/resume")
    assert not queues.is_paused(ops, "default")


def test_run_now_enqueues_the_schedule_and_refuses_while_it_runs(
    ops: Registry, client: FlaskClient
) -> None:
    schedules.sync(ops)
    post(client, "/ops/schedules/hourly-ping/run")
    [job_id] = ops.queue("default").get_job_ids()
    job = Job.fetch(job_id, connection=ops.connection, serializer=ops.serializer)
    assert job.kwargs == {"value": "scheduled"}

    post(client, "/ops/schedules/hourly-ping/run")
    assert ops.queue("default").get_job_ids() == [job_id]  # overlap: skip
    assert "is still queued or running" in page(client, "/ops/schedules")
    post(client, "/ops/schedules/hourly-ping/run", force="1")
    assert ops.queue("default").count == 2
    post(client, "/ops/schedules/nope/run")
    assert "no schedule &#39;nope&#39;" in page(client, "/ops/schedules")


def test_next_only_goes_to_pages_of_the_dashboard(ops: Registry, client: FlaskClient) -> None:
    assert post(client, "/ops/queues/high/pause", next="https://evil.example/") == "/ops/"
    assert post(client, "/ops/queues/high/resume", next="//evil.example/ops/") == "/ops/"


# -- security -------------------------------------------------------------------------------------


def test_auth_refused_is_403_for_every_page_and_action(
    ops: Registry, client: FlaskClient, door: Door
) -> None:
    job = failed_login(ops)
    token = CSRF.search(page(client, "/ops/"))
    assert token is not None
    door.open = False
    for url in (
        "/ops/",
        "/ops/failed",
        "/ops/schedules",
        "/ops/queues/high",
        f"/ops/jobs/{job.id}",
    ):
        assert client.get(url).status_code == 403, url
    response = client.post("/ops/queues/high/pause", data={"csrf_token": token.group(1)})
    assert response.status_code == 403
    response = client.post("/ops/failed/delete", data={"csrf_token": token.group(1), "all": "1"})
    assert response.status_code == 403
    assert not queues.is_paused(ops, "high")
    assert ops.queue("high").failed_job_registry.get_job_ids() == [job.id]


def test_an_auth_callable_may_answer_with_its_own_response(ops: Registry) -> None:
    from werkzeug.wrappers import Response

    app = Flask("host")
    app.secret_key = "s"
    login = Response("log in first", 302, {"Location": "/login"})
    app.register_blueprint(blueprint(auth=lambda: login, registry=ops), url_prefix="/ops")
    response = app.test_client().get("/ops/")
    assert (response.status_code, response.headers["Location"]) == (302, "/login")


def test_a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    ops: Registry, client: FlaskClient
) -> None:
    job = failed_login(ops)
    page(client, "/ops/")
    for data in ({}, {"csrf_token": "forged"}):
        for url, form in (
            ("/ops/queues/high/pause", {}),
            ("/ops/failed/requeue", {"job_id": job.id}),
            ("/ops/failed/delete", {"all": "1"}),
            ("/ops/schedules/hourly-ping/run", {}),
        ):
            response = client.post(url, data={**data, **form})
            assert response.status_code == 400, url
            assert "CSRF" in response.get_data(as_text=True)
    assert not queues.is_paused(ops, "high")
    assert ops.queue("high").failed_job_registry.get_job_ids() == [job.id]
    assert ops.queue("default").count == 0
    assert client.get("/ops/queues/high/pause").status_code == 405  # never a GET


def test_the_blueprint_refuses_to_be_built_without_auth_said(ops: Registry) -> None:
    with pytest.raises(DashboardError, match=r"needs auth=.*or auth=None"):
        blueprint(registry=ops)
    with pytest.raises(DashboardError, match="must be a callable or None"):
        blueprint(auth="admin", registry=ops)  # type: ignore[arg-type]
    open_app = Flask("open")
    open_app.secret_key = "s"
    open_app.register_blueprint(blueprint(auth=None, registry=ops), url_prefix="/ops")
    assert open_app.test_client().get("/ops/").status_code == 200


def test_the_blueprint_needs_a_secret_key_and_a_registry(ops: Registry) -> None:
    app = Flask("no-secret")
    with pytest.raises(DashboardError, match="needs the app's SECRET_KEY"):
        app.register_blueprint(blueprint(auth=None, registry=ops))
    app = Flask("no-registry")
    app.secret_key = "s"
    with pytest.raises(DashboardError, match=r"call TaskKit\(app\)"):
        app.register_blueprint(blueprint(auth=None))


def test_taskkit_mounts_the_dashboard_and_requires_its_auth(
    ops_config: Path, ops: Registry, door: Door
) -> None:
    with pytest.raises(DashboardError, match="needs dashboard_auth="):
        TaskKit(Flask("a"), config=str(ops_config), dashboard="/taskkit")
    app = Flask("b")
    app.secret_key = "s"
    TaskKit(app, config=str(ops_config), dashboard="/taskkit", dashboard_auth=door)
    client = app.test_client()
    assert client.get("/taskkit/").status_code == 200
    door.open = False
    assert client.get("/taskkit/").status_code == 403


def test_redis_away_is_one_clear_page(ops_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:pw-not-shown@127.0.0.1:1/0")
    registry = load(ops_config, cached=False)
    app = Flask("away")
    app.secret_key = "s"
    app.register_blueprint(blueprint(auth=None, registry=registry))
    response = app.test_client().get("/")
    text = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "Redis is not reachable" in text and "pw-not-shown" not in text


# -- the standalone server ----------------------------------------------------------------------


def test_standalone_binds_to_loopback_unless_given_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    check_binding("127.0.0.1", None)
    with pytest.raises(DashboardError, match="reachable from other machines"):
        check_binding("0.0.0.0", None)
    with pytest.raises(DashboardError, match="shorter than 16"):
        check_binding("0.0.0.0", "short")
    check_binding("0.0.0.0", "a-long-enough-token")


def test_the_standalone_token_is_asked_for_and_checked(ops: Registry) -> None:
    token = "a-long-enough-token"
    client = create_app(ops, token=token).test_client()
    refused = client.get("/")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert client.get("/static/taskkit.css").status_code == 401


@pytest.mark.slow
def test_taskkit_dashboard_serves_and_refuses_to_listen_off_loopback_without_a_token(
    ops_config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    import urllib.request

    from ops_support import free_port

    done = worker_cli.run("dashboard", "-c", str(ops_config), "--host", "0.0.0.0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 is reachable from other machines: set a token in "
        "$TASKKIT_DASHBOARD_TOKEN (or --token) so that only people who have it get in, "
        "or listen on 127.0.0.1"
    ]
    port = free_port()
    process = worker_cli.start("dashboard", "-c", str(ops_config), "--port", str(port))

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(answers, timeout=60, what="the dashboard to answer")
    assert f"on http://127.0.0.1:{port}/ (waitress)" in worker_cli.stderr(process)
    assert worker_cli.stop(process) == 0


def test_times_and_spans_read_as_people_say_them() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert ago(now - timedelta(seconds=42), now) == "42 s ago"
    assert ago(now - timedelta(minutes=3, seconds=5), now) == "3 min 5 s ago"
    assert ago(now + timedelta(hours=2), now) == "in 2 h"
    assert ago(None) == "-"
    assert span(0.004) == "4 ms" and span(1.25) == "1.2 s" and span(90000) == "1 d 1 h"


# -- metrics and progress -------------------------------------------------------------------


def test_metrics_are_served_behind_the_same_auth(
    ops: Registry, client: FlaskClient, door: Door
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    failed_login(ops)
    response = client.get("/ops/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    jobs = {
        (s.labels["job"], s.labels["outcome"]): s.value
        for s in families["taskkit_jobs"].samples
        if s.name == "taskkit_jobs_total"
    }
    assert jobs[("login", "failed")] == 1
    failed_in_queue = {
        s.labels["queue"]: s.value
        for s in families["taskkit_queue_jobs"].samples
        if s.labels["state"] == "failed"
    }
    assert sum(failed_in_queue.values()) == 1
    door.open = False
    assert client.get("/ops/metrics").status_code == 403


def test_a_job_page_and_the_overview_show_the_progress_it_reported(
    ops_config: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, door: Door
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    extra = '  count_with_progress: {func: "opsjobs:count_with_progress"}\n'
    registry = load(write_jobs_yaml(ops_config.parent, extra_jobs=extra, name="p.yaml"))
    job = registry.enqueue("count_with_progress", total=4)
    run_burst_worker(registry)
    app = Flask("host")
    app.secret_key = "test-secret"
    app.register_blueprint(blueprint(auth=door, registry=registry), url_prefix="/ops")
    with app.test_client() as client:
        shown = page(client, f"/ops/jobs/{job.id}")
    assert '<progress max="1" value="1.0">' in shown
    assert "4 of 4" in shown
