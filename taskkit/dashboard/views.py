"""The dashboard's pages (GET) and actions (POST, each redirecting back with a message).

Every action calls the function the command line calls: :mod:`taskkit.failed` for
requeue and delete, :func:`taskkit.schedules.run_now`, :mod:`taskkit.queues` for pause
and resume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from taskkit import failed, queues, schedules
from taskkit.dashboard import data, runs
from taskkit.dashboard.blueprint import current_registry
from taskkit.errors import RedisUnavailableError, TaskkitError
from taskkit.metrics import render_metrics

T = TypeVar("T")


def register(bp: Blueprint) -> None:
    """Add every page and action to ``bp``."""
    bp.add_url_rule("/", "overview", overview)
    bp.add_url_rule("/queues/<name>", "queue", queue_jobs)
    bp.add_url_rule("/queues/<name>/pause", "pause", pause, methods=["POST"])
    bp.add_url_rule("/queues/<name>/resume", "resume", resume, methods=["POST"])
    bp.add_url_rule("/jobs/<job_id>", "job", job)
    bp.add_url_rule("/failed", "failed", failed_jobs)
    bp.add_url_rule("/failed/requeue", "requeue", requeue, methods=["POST"])
    bp.add_url_rule("/failed/delete", "delete", delete, methods=["POST"])
    bp.add_url_rule("/schedules", "schedules", schedule_list)
    bp.add_url_rule("/schedules/<name>/run", "run_schedule", run_schedule, methods=["POST"])
    bp.add_url_rule("/workflows", "workflows", workflow_runs)
    bp.add_url_rule("/workflows/runs/<run_id>", "run", workflow_run)
    bp.add_url_rule("/metrics", "metrics", metrics)


# -- pages ----------------------------------------------------------------------------------


def metrics() -> Response:
    """Prometheus's text format, over every worker and host (behind the same ``auth``)."""
    body, content_type = render_metrics(current_registry())
    return Response(body, content_type=content_type)


def overview() -> str:
    """Queues by state, workers, schedules and the latest failures."""
    return render_template("taskkit/overview.html", view=data.overview(current_registry()))


def queue_jobs(name: str) -> str:
    """One queue's jobs in one state, a page at a time."""
    registry = current_registry()
    state = request.args.get("state", "queued")
    number = request.args.get("page", 1, type=int) or 1
    if name not in registry.queue_names or state not in data.STATES or number < 1:
        abort(404)
    page = data.queue_page(registry, name, state, number)
    return render_template("taskkit/queue.html", page=page, states=data.STATES)


def job(job_id: str) -> str:
    """One job: arguments (secrets hidden), status, times, exception, retries, meta."""
    view = data.job_view(current_registry(), job_id)
    if view is None:
        abort(404)
    in_failed = failed.get_failed(current_registry(), job_id) is not None
    return render_template("taskkit/job.html", job=view, in_failed=in_failed)


def failed_jobs() -> str:
    """Failed jobs, latest first, with requeue and delete."""
    registry = current_registry()
    number = max(1, request.args.get("page", 1, type=int) or 1)
    ids = data.failed_ids(registry)
    start = (number - 1) * data.PAGE_SIZE
    jobs = data.failed_page(registry, ids[start : start + data.PAGE_SIZE])
    pages = max(1, -(-len(ids) // data.PAGE_SIZE))
    return render_template(
        "taskkit/failed.html", jobs=jobs, total=len(ids), number=number, pages=pages
    )


def schedule_list() -> str:
    """Schedules with their last and next run, and run-now."""
    rows = data.schedule_rows(current_registry())
    return render_template("taskkit/schedules.html", schedules=rows)


def workflow_runs() -> str:
    """The latest workflow runs, with their status."""
    registry = current_registry()
    return render_template(
        "taskkit/workflows.html",
        runs=runs.recent_runs(registry),
        workflows=registry.config.workflows,
    )


def workflow_run(run_id: str) -> str:
    """One run: each step's jobs with their status and timing, linking to the job pages."""
    found = runs.run_page(current_registry(), run_id)
    if found is None:
        abort(404)
    return render_template("taskkit/run.html", page=found)


# -- actions --------------------------------------------------------------------------------


def pause(name: str) -> Response:
    """Pause a queue for every worker."""
    done = _act(lambda: queues.pause(current_registry(), name))
    if done is not None:
        flash(f"Paused queue {name}" if done else f"Queue {name} was paused already", "ok")
    return _back(url_for(".overview"))


def resume(name: str) -> Response:
    """Let workers take a queue's jobs again."""
    done = _act(lambda: queues.resume(current_registry(), name))
    if done is not None:
        flash(f"Resumed queue {name}" if done else f"Queue {name} was not paused", "ok")
    return _back(url_for(".overview"))


def requeue() -> Response:
    """Requeue one failed job (``job_id``) or all of them (``all``)."""
    registry = current_registry()
    ids = _chosen_ids()
    done = _act(lambda: failed.requeue(registry, ids))
    if done is not None:
        flash(f"Requeued {_jobs(len(done))}", "ok" if done else "error")
    return _back(url_for(".failed"))


def delete() -> Response:
    """Delete one failed job (``job_id``) or all of them (``all``)."""
    registry = current_registry()
    ids = _chosen_ids()
    done = _act(lambda: failed.purge(registry, ids))
    if done is not None:
        flash(f"Deleted {_jobs(len(done))}", "ok" if done else "error")
    return _back(url_for(".failed"))


def run_schedule(name: str) -> Response:
    """Enqueue a schedule's job now (``force`` even while its last run is active)."""
    force = request.form.get("force") == "1"
    registry = current_registry()
    job_id = _act(lambda: schedules.run_now(registry, name, force=force))
    if job_id is not None:
        schedule = registry.config.schedules[name]
        started = "started run" if schedule.workflow is not None else "enqueued job"
        flash(f"Schedule {name}: {started} {job_id}", "ok")
    return _back(url_for(".schedules"))


def _chosen_ids() -> list[str]:
    if request.form.get("all") == "1":
        return data.failed_ids(current_registry())
    job_id = request.form.get("job_id", "").strip()
    if not job_id:
        abort(400, "give job_id, or all=1")
    return [job_id]


def _act(action: Callable[[], T]) -> T | None:
    """Run an action; a taskkit error (a refused run-now, Redis away) becomes a message."""
    try:
        return action()
    except RedisUnavailableError:
        raise
    except TaskkitError as error:
        flash(str(error), "error")
        return None


def _back(default: str) -> Response:
    """Redirect to the form's ``next`` if it is a page of this dashboard, else ``default``."""
    target = request.form.get("next", "")
    root = url_for(".overview")
    if not target.startswith(root) or target.startswith("//") or "\\" in target:
        target = default
    return redirect(target, code=303)


def _jobs(count: int) -> str:
    return f"{count} job{'s' if count != 1 else ''}"


__all__ = ["register"]
