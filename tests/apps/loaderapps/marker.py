"""Creates a marker file when called, to prove a YAML python tag never runs it."""

from __future__ import annotations

from pathlib import Path


def touch(path: str) -> None:
    """Create ``path``; the YAML tests assert it never appears."""
    Path(path).touch()
