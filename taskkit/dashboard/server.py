"""``taskkit dashboard``: the dashboard served alone, on loopback unless told otherwise.

Off loopback it requires a token (HTTP Basic, any user name, the token as password; or
``Authorization: Bearer TOKEN``), compared in constant time. It is served by waitress
when installed (``pip install 'flask-taskkit[dashboard]'``), else by Flask's own server.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from base64 import b64decode
from binascii import Error as Base64Error

from flask import Flask, request
from werkzeug.wrappers import Response

from taskkit.dashboard.blueprint import Auth, blueprint
from taskkit.errors import DashboardError
from taskkit.registry import Registry

MIN_TOKEN = 16
"""Characters a token needs at least: a guessable one would be no protection."""
TOKEN_VARIABLE = "TASKKIT_DASHBOARD_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address (or ``localhost``) only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen off loopback without a token, or with a short one."""
    if token is not None and len(token) < MIN_TOKEN:
        raise DashboardError(
            f"the dashboard token is shorter than {MIN_TOKEN} characters; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe())'`"
        )
    if token is None and not is_loopback(host):
        raise DashboardError(
            f"--host {host} is reachable from other machines: set a token in "
            f"${TOKEN_VARIABLE} (or --token) so that only people who have it get in, "
            "or listen on 127.0.0.1"
        )


def token_auth(token: str) -> Auth:
    """An ``auth`` callable that lets in requests carrying ``token``; else asks for it."""
    expected = token.encode()

    def check() -> bool | Response:
        if hmac.compare_digest(_presented(), expected):
            return True
        return Response(
            "the taskkit dashboard needs its token (as the password; any user name)\n",
            401,
            {"WWW-Authenticate": 'Basic realm="taskkit dashboard", charset="UTF-8"'},
        )

    return check


def _presented() -> bytes:
    """The token a request carries (Bearer, or Basic's password); empty if none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            decoded = b64decode(value.strip(), validate=True)
        except (Base64Error, ValueError):
            return b""
        return decoded.partition(b":")[2]
    return b""


def create_app(registry: Registry, *, token: str | None = None) -> Flask:
    """A Flask app that serves only the dashboard of ``registry``, at ``/``."""
    app = Flask("taskkit.dashboard", static_folder=None)
    # Per process: forms left open across a restart ask for a reload, nothing more.
    app.secret_key = secrets.token_hex(32)
    app.config["SESSION_COOKIE_NAME"] = "taskkit_dashboard"
    app.config["SESSION_COOKIE_SAMESITE"] = "Strict"
    auth = token_auth(token) if token is not None else None
    app.register_blueprint(blueprint(auth=auth, registry=registry))
    return app


def server_name() -> str:
    """The server :func:`serve` would use: waitress if installed, else Flask's own."""
    try:
        import waitress  # noqa: F401
    except ImportError:
        return "flask"
    return "waitress"


def serve(app: Flask, host: str, port: int) -> None:
    """Serve ``app`` until interrupted; :class:`DashboardError` if the port cannot be had."""
    try:
        if server_name() == "waitress":
            import waitress

            waitress.serve(app, host=host, port=port, threads=4, ident="taskkit")
        else:
            from werkzeug.serving import run_simple

            run_simple(host, port, app, threaded=True)
    except OSError as error:
        raise DashboardError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); "
            "pick another --port or --host"
        ) from None


__all__ = [
    "MIN_TOKEN",
    "TOKEN_VARIABLE",
    "check_binding",
    "create_app",
    "is_loopback",
    "serve",
    "server_name",
    "token_auth",
]
