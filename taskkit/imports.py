"""Importing a ``"package.module:attr"`` reference: how taskkit imports user code by name.

The callers (a job's ``func``, the app factory) each explain a failure in their own
words; this module only tells the kinds of failure apart.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class ReferenceImportError(Exception):
    """The module of a reference could not be imported."""

    def __init__(self, module_name: str, error: Exception) -> None:
        super().__init__(f"importing {module_name!r} raised {type(error).__name__}: {error}")
        self.module_name = module_name
        self.error = error

    @property
    def module_missing(self) -> bool:
        """True when the module (or a package above it) does not exist, False when the
        module exists and raised while importing, a missing import of its own included."""
        missing = self.error.name if isinstance(self.error, ModuleNotFoundError) else None
        name = self.module_name
        return missing is not None and (name == missing or name.startswith(missing + "."))


class AttributeMissingError(Exception):
    """The module imported but has no such attribute; ``part`` is the step that failed."""

    def __init__(self, module: ModuleType, module_name: str, attr: str, part: str) -> None:
        super().__init__(f"module {module_name!r} has no attribute {attr!r}")
        self.module = module
        self.module_name = module_name
        self.attr = attr
        self.part = part


def import_reference(reference: str) -> Any:
    """The object ``"package.module:attr.inner"`` names.

    Raises :class:`ReferenceImportError` or :class:`AttributeMissingError`.
    """
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ReferenceImportError(module_name, error) from error
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AttributeMissingError(module, module_name, attr, part)
        target = getattr(target, part)
    return target


__all__ = ["AttributeMissingError", "ReferenceImportError", "import_reference"]
