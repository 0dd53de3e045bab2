"""The Flask extension: ``TaskKit(app)``, ``tk.enqueue(...)`` and ``flask taskkit ...``.

The extension loads jobs.yaml through the same per-process cache as the worker, so when
a worker builds its app from a factory that calls ``TaskKit(app)``, nothing is loaded,
imported or connected a second time.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_app_context
from rq.job import Job

from taskkit.errors import DashboardError
from taskkit.registry import Registry, load
from taskkit.timing import assume_utc

if TYPE_CHECKING:
    from taskkit.workflows.runs import Run

_NOT_GIVEN: Any = object()


class TaskKit:
    """Flask extension for taskkit.

    The config path comes from ``config=``, else ``app.config["TASKKIT_CONFIG"]``, else
    ``$TASKKIT_CONFIG``, else ``jobs.yaml``; a relative one is read from the app's project
    folder (see :func:`config_path`). Eager mode (jobs run at once, in the
    caller's context, no Redis) comes from ``eager=``, else ``app.config["TASKKIT_EAGER"]``,
    else ``$TASKKIT_EAGER``.

    ``dashboard="/taskkit"`` mounts the dashboard there (:mod:`taskkit.dashboard`); it
    needs ``dashboard_auth=``, a callable that lets people in, or ``None`` said on purpose.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: str | None = None,
        eager: bool | None = None,
        dashboard: str | None = None,
        dashboard_auth: Any = _NOT_GIVEN,
    ) -> None:
        self._config = config
        self._eager = eager
        self._dashboard = dashboard
        self._dashboard_auth = dashboard_auth
        if dashboard is not None and dashboard_auth is _NOT_GIVEN:
            raise DashboardError(
                f"TaskKit(app, dashboard={dashboard!r}) needs dashboard_auth=: a callable "
                "that returns True for people allowed in, or dashboard_auth=None to leave "
                "the dashboard open to anyone who can reach the app, on purpose"
            )
        self._app: Flask | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Load jobs.yaml for ``app``, register ``app.extensions["taskkit"]`` and the CLI."""
        registry = load(config_path(app, self._config))
        eager = self._eager
        if eager is None and "TASKKIT_EAGER" in app.config:
            eager = _truthy(app.config["TASKKIT_EAGER"])
        app.extensions["taskkit"] = _State(registry, eager, app)
        self._app = app
        from taskkit.cli import flask_group

        if "taskkit" not in app.cli.commands:
            app.cli.add_command(flask_group())
        if self._dashboard is not None:
            from taskkit.dashboard import blueprint

            bp = blueprint(auth=self._dashboard_auth)
            app.register_blueprint(bp, url_prefix=self._dashboard.rstrip("/") or None)

    def _state(self) -> _State:
        app = current_app._get_current_object() if has_app_context() else self._app  # type: ignore[attr-defined]
        if app is None or "taskkit" not in app.extensions:
            raise RuntimeError(
                "TaskKit is not initialised for this app; call TaskKit(app) or tk.init_app(app)"
            )
        state: _State = app.extensions["taskkit"]
        return state

    @property
    def registry(self) -> Registry:
        """The registry of the current app."""
        return self._state().registry

    def enqueue(self, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue job ``name`` (or, in eager mode, run it now in this app's context)."""
        return self._state().submit(name, args, kwargs)

    def fetch(self, job_id: str) -> Job | None:
        """The job ``job_id`` read with the right serializer, or None; see Registry.fetch."""
        return self._state().fetch(job_id)

    def enqueue_in(self, delay: timedelta, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue job ``name`` to run after ``delay`` (in eager mode: run it now)."""
        return self._state().enqueue_in(delay, name, *args, **kwargs)

    def enqueue_at(self, when: datetime, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue job ``name`` to run at ``when``, naive meaning UTC (in eager mode: now)."""
        return self._state().enqueue_at(when, name, *args, **kwargs)

    def start_workflow(self, name: str, /, **inputs: Any) -> Run:
        """Start a run of workflow ``name`` (in eager mode: run it now, in this app's context)."""
        return self._state().start_workflow(name, inputs)


def config_path(app: Flask, config: str | os.PathLike[str] | None = None) -> Path:
    """The jobs.yaml of ``app``: ``config``, else ``app.config["TASKKIT_CONFIG"]``, else
    ``$TASKKIT_CONFIG``, else ``jobs.yaml``; a relative path is read from the app's
    project folder (:func:`project_folder`), so the app finds its jobs.yaml whatever the
    working directory (its tests run from anywhere). The ``taskkit`` command reads a
    relative ``-c`` or ``$TASKKIT_CONFIG`` from the working directory, as commands do.
    """
    path = Path(
        config
        or app.config.get("TASKKIT_CONFIG")
        or os.environ.get("TASKKIT_CONFIG")
        or "jobs.yaml"
    )
    return path if path.is_absolute() else project_folder(app) / path


def project_folder(app: Flask) -> Path:
    """The folder that holds the app's top-level package, or ``app.root_path`` for an app
    that is a single module: where Flask puts the default instance folder, and where a
    project keeps jobs.yaml, next to its package.

    Not ``app.root_path`` itself: for an app in ``myshop/__init__.py`` that is the package
    folder, one below the project's jobs.yaml.
    """
    top = sys.modules.get(app.import_name.partition(".")[0])
    file = getattr(top, "__file__", None)
    if top is not None and hasattr(top, "__path__") and file:
        return Path(file).resolve().parent.parent
    return Path(app.root_path)


class _State:
    """What ``app.extensions["taskkit"]`` holds: the registry and the app's eager flag.

    ``eager`` None means "as ``$TASKKIT_EAGER`` says when the job is enqueued".
    """

    def __init__(self, registry: Registry, eager: bool | None, app: Flask) -> None:
        self.registry = registry
        self.eager = eager
        self.app = app

    def enqueue(self, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue, or run at once in this app's context when eager."""
        return self.submit(name, args, kwargs)

    def fetch(self, job_id: str) -> Job | None:
        """The job ``job_id`` (in eager mode: one this process ran), or None."""
        return self.registry.fetch(job_id, eager=self.eager)

    def enqueue_in(self, delay: timedelta, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue to run after ``delay`` (when eager: run now)."""
        return self.submit(name, args, kwargs, at=datetime.now(UTC) + delay)

    def enqueue_at(self, when: datetime, name: str, /, *args: Any, **kwargs: Any) -> Job:
        """Enqueue to run at ``when``, naive meaning UTC (when eager: run now)."""
        return self.submit(name, args, kwargs, at=assume_utc(when))

    def submit(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        at: datetime | None = None,
    ) -> Job:
        """Enqueue through the registry with this app's eager setting, which wins over
        ``$TASKKIT_EAGER``; an eager job runs in the active context, else in this app's."""
        eager = self.registry.eager if self.eager is None else self.eager
        if not eager or has_app_context():
            return self.registry.submit(name, args, kwargs, at=at, eager=eager)
        with self.app.app_context():
            return self.registry.submit(name, args, kwargs, at=at, eager=True)

    def start_workflow(self, name: str, inputs: dict[str, Any]) -> Run:
        """Start a run with this app's eager setting; an eager run runs in the active
        context, else in this app's."""
        eager = self.registry.eager if self.eager is None else self.eager
        if not eager or has_app_context():
            return self.registry.submit_workflow(name, inputs, eager=eager)
        with self.app.app_context():
            return self.registry.submit_workflow(name, inputs, eager=True)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


__all__ = ["TaskKit", "config_path", "project_folder"]
