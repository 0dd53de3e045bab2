"""``${VAR}`` and ``${VAR:-default}`` in jobs.yaml's strings, from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from taskkit.errors import Problem
from taskkit.loader.positions import Path_, Positions

_INTERPOLATION = re.compile(r"\$\$|\$\{([^}:]*)(?::-([^}]*))?\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Interpolator:
    """Replaces ``${VAR}`` and ``${VAR:-default}`` in strings; ``$$`` is a literal ``$``."""

    def __init__(
        self, env: Mapping[str, str], positions: Positions, problems: list[Problem]
    ) -> None:
        self.env = env
        self.positions = positions
        self.problems = problems

    def apply(self, value: Any, path: Path_) -> Any:
        if isinstance(value, dict):
            return {key: self.apply(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.apply(item, (*path, i)) for i, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return _INTERPOLATION.sub(lambda match: self._replace(match, path), value)
        return value

    def _replace(self, match: re.Match[str], path: Path_) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if not _VAR_NAME.match(name):
            self.problems.append(
                self.positions.problem(
                    path,
                    f"{match.group(0)!r} is not a valid variable reference",
                    "write ${NAME} or ${NAME:-default}; use $$ for a literal $",
                )
            )
            return ""
        if name in self.env:
            return self.env[name]
        if default is not None:
            return default
        self.problems.append(
            self.positions.problem(
                path,
                f"environment variable {name} is not set",
                f"set {name}, or give a default: ${{{name}:-value}}",
            )
        )
        return ""


__all__ = ["Interpolator"]
