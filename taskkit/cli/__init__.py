"""The ``taskkit`` command line (also ``flask taskkit``), one module per command group.

- :mod:`~taskkit.cli.root`: the ``taskkit`` group, ``main`` and ``flask taskkit``
- :mod:`~taskkit.cli.group`: the group class; errors turned into lines at the edge
- :mod:`~taskkit.cli.options`: options shared by several commands (``-c/--config``, ...)
- :mod:`~taskkit.cli.config_commands`: ``validate``, ``list``, ``schema``
- :mod:`~taskkit.cli.run`: ``run-worker``, ``run-scheduler``, ``dev``
- :mod:`~taskkit.cli.schedules`: ``schedules sync|list|run|import``
- :mod:`~taskkit.cli.ops`: ``enqueue``, ``status``, ``failed``
- :mod:`~taskkit.cli.queues`: ``queues list|pause|resume|drain``, ``dashboard``
- :mod:`~taskkit.cli.observe`: ``metrics``
- :mod:`~taskkit.cli.workflows`: ``workflows start|show|list``
- :mod:`~taskkit.cli.legacy`: ``legacy convert``

Thin on purpose: each command loads the registry and calls one function.
"""

from taskkit.cli.root import cli as cli
from taskkit.cli.root import flask_group as flask_group
from taskkit.cli.root import main as main

__all__ = ["cli", "flask_group", "main"]
