"""Context policies (``none``, ``app``, ``request``) and the one Flask app of a process.

This is the piece that replaces the per-job "create an app if there is no context, push
it, pop it" boilerplate: the app is built once per process, and each job gets a fresh
context of it, so teardown handlers run after every job, success or failure. A teardown
handler that raises does not change the job's outcome. An ``async def`` job is run to
completion on an event loop of its own, inside its context.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app, has_app_context

from taskkit.config import AppConfig, Context
from taskkit.errors import AppFactoryError
from taskkit.imports import AttributeMissingError, ReferenceImportError, import_reference

log = logging.getLogger("taskkit.context")

TeardownErrorHandler = Callable[[Exception], None]
"""Told of an exception a teardown handler raised after a job; the job's outcome stands."""


def build_app(config: AppConfig) -> Flask:
    """Import and call the factory named in jobs.yaml (or take the app it names)."""
    module_name, _, attr = config.factory.partition(":")
    try:
        target = import_reference(config.factory)
    except ReferenceImportError as failed:
        error = failed.error
        raise AppFactoryError(
            f"app.factory {config.factory!r}: importing {module_name!r} failed "
            f"({type(error).__name__}: {error}); fix the module or the path in jobs.yaml"
        ) from error
    except AttributeMissingError:
        target = None
    if isinstance(target, Flask):
        return target
    if not callable(target):
        raise AppFactoryError(
            f"app.factory {config.factory!r}: {module_name} has no callable {attr!r}; "
            "name a factory function or a Flask app object"
        )
    try:
        app = target(**config.kwargs)
    except Exception as error:
        raise AppFactoryError(
            f"app.factory {config.factory!r} raised {type(error).__name__}: {error}; "
            "fix the factory or app.kwargs"
        ) from error
    if not isinstance(app, Flask):
        raise AppFactoryError(
            f"app.factory {config.factory!r} returned {type(app).__name__}, not a Flask app; "
            "return the app from the factory"
        )
    return app


class ProcessApp:
    """The Flask app of this process: built on first use, at most once.

    The worker builds it before forking, so work horses inherit it and the factory runs
    once per worker process, never per job.
    """

    def __init__(self, config: AppConfig | None) -> None:
        self.config = config
        self._app: Flask | None = None
        self._lock = threading.Lock()
        self.builds = 0

    @property
    def configured(self) -> bool:
        """Whether jobs.yaml names an app at all."""
        return self.config is not None

    def get(self) -> Flask:
        """The app, building it on first use."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._build()
        return self._app

    @property
    def built(self) -> Flask | None:
        """The app if it was built or adopted already, else None."""
        return self._app

    def adopt(self, app: Flask | None) -> None:
        """Use an app built elsewhere (a test's) instead of building one; None forgets it."""
        self._app = app

    def _build(self) -> Flask:
        if self.config is None:
            raise AppFactoryError(
                "a job needs a Flask app context but jobs.yaml has no app: section; "
                "add app.factory, or set the job's context: none"
            )
        self.builds += 1
        return build_app(self.config)


def run(
    policy: Context,
    func: Callable[..., Any],
    args: list[Any] | tuple[Any, ...],
    kwargs: dict[str, Any],
    process_app: ProcessApp,
    *,
    on_teardown_error: TeardownErrorHandler | None = None,
) -> Any:
    """Call ``func`` under ``policy``; a coroutine it returns is run to completion there.

    An active app context (eager mode, a test) is reused; otherwise a fresh one of the
    process's app is pushed for this call and popped after it. A ``request`` job always
    gets a request of its own, built from ``app.server_name`` as in a worker, even when
    enqueued eagerly from a view: it must not see (or depend on) the view's request.
    An exception from a teardown handler goes to ``on_teardown_error`` (default: logged)
    instead of replacing the job's own outcome.
    """
    if policy == "none":
        return call(func, args, kwargs)
    if has_app_context():
        if policy == "app":
            return call(func, args, kwargs)
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        # Pushed on the active app context, which it reuses: no app teardown runs at its end.
        context = _request_context(app, process_app)
    else:
        app = process_app.get()
        context = app.app_context() if policy == "app" else _request_context(app, process_app)
    return _call_within(context, func, args, kwargs, on_teardown_error or _log_teardown_error)


def call(func: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
    """Call ``func``; if it returns a coroutine (an ``async def`` job), run it to the end.

    Each coroutine gets an event loop of its own (``asyncio.run``), created and closed
    around it, in this process and under the caller's context variables (so Flask's
    ``current_app`` and Flask-SQLAlchemy's session are the job's). RQ would run it only
    after the function returned, i.e. after the job's context was popped.
    """
    result = func(*args, **kwargs)
    if inspect.iscoroutine(result):
        return _run_coroutine(result)
    return result


def _run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Eager mode called from async code: a loop already runs in this thread and cannot be
    # nested, so the job gets its own loop in a helper thread, with this context's variables.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskkit-eager") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


def _call_within(
    context: Any,
    func: Callable[..., Any],
    args: Any,
    kwargs: dict[str, Any],
    on_teardown_error: TeardownErrorHandler,
) -> Any:
    """Push ``context``, call ``func``, pop ``context``; the job's outcome is the call's.

    ``with context:`` would let a raising teardown handler turn a job that returned into a
    failed one (and, with retries, run finished work again).
    """
    context.push()
    try:
        result = call(func, args, kwargs)
    except BaseException as error:
        _pop(context, error, on_teardown_error)
        raise
    _pop(context, None, on_teardown_error)
    return result


def _pop(
    context: Any, error: BaseException | None, on_teardown_error: TeardownErrorHandler
) -> None:
    try:
        context.pop(error)  # Flask pops the context even when a teardown handler raises
    except Exception as teardown_error:
        on_teardown_error(teardown_error)


def _log_teardown_error(error: Exception) -> None:
    log.error(
        "a teardown handler raised after the job ended; the job keeps its outcome: %s: %s",
        type(error).__name__,
        error,
        exc_info=error,
    )


def _request_context(app: Flask, process_app: ProcessApp) -> Any:
    server_name = (
        (process_app.config.server_name if process_app.config else None)
        or app.config.get("SERVER_NAME")
        or "localhost"
    )
    scheme = app.config.get("PREFERRED_URL_SCHEME", "http")
    root = app.config.get("APPLICATION_ROOT", "/")
    return app.test_request_context(root, base_url=f"{scheme}://{server_name}{root}")


def install_fork_hygiene(app: Flask) -> None:
    """Make every child forked from now on start with empty database pools.

    The parent's pooled connections are closed now, and a forked child drops what it
    inherited without closing the parent's sockets (SQLAlchemy's advice for forks:
    ``engine.dispose(close=False)``), so no connection is ever used by two processes.
    Safe to call again: each engine is tracked once and one fork hook serves them all.
    """
    global _hook_installed  # noqa: PLW0603 - os.register_at_fork hooks cannot be removed
    # An in-memory SQLite database lives in its one connection: disposing would erase it.
    engines = [engine for engine in _sqlalchemy_engines(app) if not _in_memory(engine)]
    if not engines:
        return
    from sqlalchemy import event  # there are engines: Flask-SQLAlchemy is installed

    for engine in engines:
        engine.dispose()
        if engine not in _forked_engines:
            event.listen(engine, "connect", _note_connection)  # kept by dispose's new pool
            _forked_engines.add(engine)
    if not _hook_installed:
        os.register_at_fork(after_in_child=_forget_inherited_connections)
        _hook_installed = True


# Engines whose pools a forked child must drop; weak, so a discarded app is not kept alive.
_forked_engines: weakref.WeakSet[Any] = weakref.WeakSet()
_hook_installed = False


_opened_since_fork = False
"""Whether this process opened a database connection since it started or was forked."""


def _note_connection(*_: Any) -> None:
    global _opened_since_fork  # noqa: PLW0603 - one flag, read by the fork hook
    _opened_since_fork = True


def _forget_inherited_connections() -> None:
    # Runs in every fork work horse, where each page it touches costs a copy-on-write
    # fault: when the worker opened no connection since its pools were emptied (the
    # usual case: the worker itself does not use the database), one flag says so. Else
    # an engine whose pool holds no connection is left alone too, as building a new
    # pool costs a fresh horse ~300 faults (~1.8 ms).
    global _opened_since_fork  # noqa: PLW0603
    if not _opened_since_fork:
        return
    _opened_since_fork = False  # this child starts with empty pools
    for engine in list(_forked_engines):
        if _holds_connections(engine.pool):
            engine.dispose(close=False)


def _holds_connections(pool: Any) -> bool:
    if type(pool).__name__ == "NullPool":  # it never keeps a connection
        return False
    if hasattr(pool, "checkedin") and hasattr(pool, "checkedout"):  # QueuePool and kin
        return bool(pool.checkedin() or pool.checkedout())
    return True  # a pool that does not count its connections: drop it to be safe


def _in_memory(engine: Any) -> bool:
    url = engine.url
    return bool(url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"))


def _sqlalchemy_engines(app: Flask) -> list[Any]:
    extension = app.extensions.get("sqlalchemy")
    if extension is None:
        return []
    # Flask-SQLAlchemy 3 keeps engines per app; reading them directly avoids pushing an
    # app context (which would run the app's teardown handlers for no job).
    per_app = getattr(extension, "_app_engines", None)
    if per_app is not None and app in per_app:
        return list(per_app[app].values())
    with app.app_context():
        return list(extension.engines.values())


__all__ = [
    "ProcessApp",
    "TeardownErrorHandler",
    "build_app",
    "call",
    "install_fork_hygiene",
    "run",
]
