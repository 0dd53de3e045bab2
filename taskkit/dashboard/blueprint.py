"""The dashboard's blueprint: who may see it, CSRF on every change, which registry it reads.

Secure by default: :func:`blueprint` refuses to build without an ``auth`` callable unless
``auth=None`` is said on purpose; every state-changing request is a POST that must carry
a CSRF token (Flask-WTF's, checked here for the blueprint's own views only, so mounting
it never turns CSRF on for the rest of the app).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, g, render_template, request
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import generate_csrf, validate_csrf
from werkzeug.exceptions import BadRequest, Forbidden
from werkzeug.wrappers import Response
from wtforms import ValidationError

from taskkit.errors import DashboardError, RedisUnavailableError, TaskkitError
from taskkit.registry import Registry

Auth = Callable[[], "bool | Response"]
"""Called in each request's context: True lets it in; False answers 403 Forbidden; a
response (a redirect to a login page, a 401 asking for credentials) is sent as it is."""

NAME = "taskkit_dashboard"


class _Missing:
    def __repr__(self) -> str:
        return "<not given>"


MISSING: Any = _Missing()
"""``auth``'s default: distinct from None, which opens the dashboard on purpose."""


def blueprint(
    *, auth: Auth | None = MISSING, registry: Registry | None = None, name: str = NAME
) -> Blueprint:
    """The dashboard as a Flask blueprint, for ``app.register_blueprint(bp, url_prefix=...)``.

    ``auth`` is required: a callable run before every page and action (e.g. ``lambda:
    current_user.is_authenticated and current_user.is_admin``); ``auth=None`` leaves the
    dashboard open to anyone who can reach the app, and must be written out. ``registry``
    defaults to the one of ``TaskKit(app)``. The app needs a ``SECRET_KEY`` (CSRF tokens).
    """
    if auth is MISSING:
        raise DashboardError(
            "taskkit.dashboard.blueprint() needs auth=: a callable that returns True for "
            "people allowed in (e.g. auth=lambda: current_user.is_admin), or auth=None to "
            "leave the dashboard open to anyone who can reach the app, on purpose"
        )
    if auth is not None and not callable(auth):
        raise DashboardError(f"auth= must be a callable or None, not {type(auth).__name__}")
    from taskkit.dashboard import filters, views

    bp = Blueprint(name, __name__, template_folder="templates", static_folder="static")
    bp.record_once(lambda state: _check_app(state, registry))
    bp.before_request(lambda: _guard(auth, registry))
    bp.context_processor(_template_globals)
    bp.register_error_handler(TaskkitError, _taskkit_error)
    filters.register(bp)
    views.register(bp)
    return bp


def _check_app(state: BlueprintSetupState, registry: Registry | None) -> None:
    app = state.app
    if not (app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key):
        raise DashboardError(
            "the taskkit dashboard needs the app's SECRET_KEY for its CSRF tokens; set "
            "app.config['SECRET_KEY'] (or WTF_CSRF_SECRET_KEY) before registering it"
        )
    if registry is None and "taskkit" not in app.extensions:
        raise DashboardError(
            "the taskkit dashboard reads the registry of TaskKit(app): call TaskKit(app) "
            "before registering the blueprint, or pass blueprint(registry=taskkit.load(...))"
        )


def _guard(auth: Auth | None, registry: Registry | None) -> Response | None:
    """Before every view: who may see it, then (for a POST) the CSRF token."""
    if auth is not None:
        allowed = auth()
        if isinstance(allowed, Response):
            return allowed
        if not allowed:
            raise Forbidden("you are not allowed to see the taskkit dashboard")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError as error:
            raise BadRequest(f"{error}: reload the page and try again") from None
    g.taskkit_registry = registry or _app_registry(current_app)
    return None


def _app_registry(app: Flask) -> Registry:
    registry: Registry = app.extensions["taskkit"].registry
    return registry


def current_registry() -> Registry:
    """The registry the dashboard reads in this request."""
    registry: Registry = g.taskkit_registry
    return registry


def _template_globals() -> dict[str, Any]:
    return {"csrf_token": generate_csrf, "now": datetime.now(UTC)}


def _taskkit_error(error: TaskkitError) -> tuple[str, int]:
    """Redis away, or any other taskkit error: one clear page, never a traceback."""
    code = 503 if isinstance(error, RedisUnavailableError) else 400
    return render_template("taskkit/error.html", message=str(error), code=code), code


__all__ = ["MISSING", "NAME", "Auth", "blueprint", "current_registry"]
