"""pytest setup for the examples.

The ``taskkit.testing`` plugin gives every example a Redis test database of its own
(``taskkit_redis_url``) and the ``taskkit_registry`` / ``taskkit_worker`` fixtures;
this is how an app that uses taskkit enables it in its own top-level conftest.py.
"""

pytest_plugins = ["taskkit.testing"]
