"""A module that must never be imported by a worker: importing it leaves a mark.

Tests name its callables as RQ callbacks in forged entries; if a worker ever imported
it, ``$TASKKIT_IMPORT_MARKER`` (when set) would be created.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

if os.environ.get("TASKKIT_IMPORT_MARKER"):
    Path(os.environ["TASKKIT_IMPORT_MARKER"]).write_text("imported", encoding="utf-8")


def callback(*args: Any, **kwargs: Any) -> None:
    """Would be called as an RQ callback."""
