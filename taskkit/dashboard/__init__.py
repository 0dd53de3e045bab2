"""The taskkit dashboard: see and act on queues, workers, schedules and failed jobs.

Mount it in an app with ``app.register_blueprint(taskkit.dashboard.blueprint(auth=...),
url_prefix="/taskkit")`` (or ``TaskKit(app, dashboard="/taskkit", dashboard_auth=...)``),
or serve it alone with ``taskkit dashboard``.
"""

from taskkit.dashboard.blueprint import blueprint as blueprint

__all__ = ["blueprint"]
