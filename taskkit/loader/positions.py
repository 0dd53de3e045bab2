"""Where each key and value of a jobs.yaml was written, and problems placed there."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskkit.errors import Problem

Path_ = tuple[str | int, ...]


@dataclass
class Positions:
    """Where each key and value of a document sits (0-based line and column)."""

    source: str
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    plain_scalars: dict[Path_, str] = field(default_factory=dict)

    def problem(
        self, path: Path_, message: str, hint: str = "", *, at_key: bool = False
    ) -> Problem:
        """A :class:`Problem` at ``path``, placed at the nearest position known."""
        line, column = self.locate(path, at_key=at_key)
        return Problem(path, message, hint, self.source, line + 1, column + 1)

    def locate(self, path: Path_, *, at_key: bool = False) -> tuple[int, int]:
        """The position of ``path``, else of its nearest ancestor."""
        first, second = (self.keys, self.values) if at_key else (self.values, self.keys)
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in first:
                return first[prefix]
            if prefix in second:
                return second[prefix]
        return (0, 0)


__all__ = ["Path_", "Positions"]
