"""Loading each jobs.yaml once per process, and refusing a load that needs itself.

A worker loads jobs.yaml, then builds the app whose factory calls ``TaskKit(app)``,
which loads it again: the second load must cost nothing. A job module that loads its
own jobs.yaml at import must fail with one clear error instead of waiting for itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

from taskkit.errors import TaskkitError

T = TypeVar("T")


class LoadCache(Generic[T]):
    """What ``build`` made of each file, kept while the file is unchanged (same mtime)."""

    def __init__(self, build: Callable[[Path], T]) -> None:
        self.build = build
        self._built: dict[tuple[str, int], T] = {}
        # Reentrant: a job module may load another jobs.yaml while its own is being loaded.
        self._lock = threading.RLock()
        self._loading = threading.local()

    def load(self, file: Path, *, cached: bool = True) -> T:
        """``build(file)``, or what it returned before for the unchanged file."""
        if not cached:
            return self._build(file)
        try:
            resolved = file.resolve()
            key = (str(resolved), resolved.stat().st_mtime_ns)
        except (OSError, RuntimeError):  # missing, or a symlink loop: the build says which
            return self._build(file)
        with self._lock:
            if key not in self._built:
                self._built[key] = self._build(file)
            return self._built[key]

    def clear(self) -> None:
        """Forget everything built, so that the next load reads the files again."""
        with self._lock:
            self._built.clear()

    def _build(self, file: Path) -> T:
        with self._guard_against_cycles(os.path.realpath(file)):
            return self.build(file)

    @contextmanager
    def _guard_against_cycles(self, path: str) -> Iterator[None]:
        """Refuse to load a jobs.yaml that this thread is loading already: a job module that
        loads it at import (``create_app()`` whose factory calls ``TaskKit(app)``) would
        otherwise wait for itself for ever."""
        stack: list[str] = self._loading.__dict__.setdefault("stack", [])
        if path in stack:
            raise TaskkitError(
                f"{path} is loaded again while it is being loaded: a job module imports code "
                "that loads it (such as create_app() at module level, whose factory calls "
                "TaskKit(app)); build the app inside the job function, or rely on taskkit's "
                "context: app, instead of at import"
            )
        stack.append(path)
        try:
            yield
        finally:
            stack.pop()


__all__ = ["LoadCache"]
