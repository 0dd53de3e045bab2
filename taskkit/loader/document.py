"""A jobs.yaml read, parsed and validated into a config, with every problem found at once.

When parts of the file are invalid, the entries that did validate (and what can be
salvaged of the others) still make a config, so that a run reports a bad duration, a
schedule naming a missing job and a func that does not import together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taskkit.config import TaskkitConfig, check_references
from taskkit.errors import ConfigError, Problem
from taskkit.loader.files import read_text
from taskkit.loader.interpolation import Interpolator
from taskkit.loader.messages import kind_of, map_validation_errors
from taskkit.loader.nodes import parse_yaml
from taskkit.loader.positions import Positions


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where each of its parts was written."""

    config: TaskkitConfig
    path: Path
    positions: Positions


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, parse and validate a jobs.yaml; raise :class:`ConfigError` listing every problem.

    Nothing is imported here: callables are resolved by :mod:`taskkit.loader.resolution`.
    """
    loaded, problems = read_config(path, env)
    if problems or loaded is None:
        raise ConfigError(problems)
    return loaded


def read_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> tuple[LoadedConfig | None, list[Problem]]:
    """Every problem of a jobs.yaml, and the config made of the entries that did validate.

    The config is None when too little of the file is readable to build one (bad YAML).
    """
    file = Path(path)
    try:
        parsed, problems = _parse_partially(read_text(file), str(file), env)
    except ConfigError as error:
        return None, error.problems
    return (parsed.with_path(file) if parsed else None), problems


@dataclass(frozen=True)
class _Parsed:
    config: TaskkitConfig
    positions: Positions

    def with_path(self, path: Path) -> LoadedConfig:
        return LoadedConfig(self.config, path, self.positions)


def parse_config(
    text: str, source: str = "<string>", env: Mapping[str, str] | None = None
) -> _Parsed:
    """Parse and validate jobs.yaml text. ``source`` names it in error messages."""
    parsed, problems = _parse_partially(text, source, env)
    if problems or parsed is None:
        raise ConfigError(problems)
    return parsed


def _parse_partially(
    text: str, source: str, env: Mapping[str, str] | None
) -> tuple[_Parsed | None, list[Problem]]:
    positions = Positions(source)
    data = parse_yaml(text, positions)
    problems: list[Problem] = []
    data = Interpolator(os.environ if env is None else env, positions, problems).apply(data, ())
    if not isinstance(data, dict):
        kind = "empty" if data is None else kind_of(data)
        return None, [
            positions.problem((), f"the document is {kind}", "start it with 'version: 1'")
        ]
    try:
        config = TaskkitConfig.model_validate(data)
    except ValidationError as error:
        found = map_validation_errors(error, data, positions)
        partial, more = _references_of_the_rest(data, found, positions)
        parsed = _Parsed(partial, positions) if partial is not None else None
        return parsed, _together(problems, found + more)
    found = [positions.problem(p.path, p.message, p.hint) for p in check_references(config)]
    return _Parsed(config, positions), _together(problems, found)


def _together(interpolation: list[Problem], found: list[Problem]) -> list[Problem]:
    """Every problem, in file order; none that only follows from a missing ${VAR}."""

    def follows(problem: Problem) -> bool:
        return any(problem.path[: len(p.path)] == p.path for p in interpolation)

    problems = interpolation + [p for p in found if not follows(p)]
    return sorted(problems, key=lambda p: (p.line, p.column))


_SECTIONS = ("queues", "jobs", "schedules")
# What of a broken job or schedule can still be checked: a job's func imports, a
# schedule's arguments bind. The filler stands in for a schedule's form, which the
# arguments do not depend on.
_SALVAGE: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "jobs": (("func",), {}),
    "schedules": (("job", "workflow", "args", "kwargs"), {"every": 1}),
}


def _references_of_the_rest(
    data: dict[str, Any], problems: list[Problem], positions: Positions
) -> tuple[TaskkitConfig | None, list[Problem]]:
    """The config made of the entries that did validate (and of what can be salvaged of
    the others), and the cross-reference problems among them.

    So that one run reports a bad duration, a schedule naming a missing job and a func
    that does not import together, the entries with errors are set aside and the rest is
    validated again.
    """
    broken: set[tuple[str | int, ...]] = {
        p.path[:2] for p in problems if len(p.path) >= 2 and p.path[0] in _SECTIONS
    }
    dropped = {
        p.path[0] for p in problems if p.path and (len(p.path) == 1 or p.path[0] not in _SECTIONS)
    }
    rest = {key: value for key, value in data.items() if key not in dropped}
    if "version" not in data:  # reported already; what the file holds is still checked
        rest["version"] = 1
    salvaged: set[tuple[str, str]] = set()
    for section in _SECTIONS:
        if isinstance(rest.get(section), dict):
            rest[section] = _section_rest(section, rest[section], broken, problems, salvaged)
    partial = _validated(rest)
    if partial is None and salvaged:
        for section, name in salvaged:  # let what is intact still be checked
            del rest[section][name]
        salvaged.clear()
        partial = _validated(rest)
    if partial is None:
        return None, []
    set_aside = {
        section: {str(n) for s, n in broken if s == section and (s, n) not in salvaged}
        for section in _SECTIONS
    }
    if "workflows" in dropped and isinstance(data.get("workflows"), dict):
        # Broken workflows were reported; a schedule naming one is not a second problem.
        set_aside["workflows"] = {str(n) for n in data["workflows"]}
    return partial, [
        positions.problem(p.path, p.message, p.hint)
        for p in check_references(partial, also_declared=set_aside)
        if p.path[0] not in dropped
    ]


def _section_rest(
    section: str,
    entries: dict[str, Any],
    broken: set[tuple[str | int, ...]],
    problems: list[Problem],
    salvaged: set[tuple[str, str]],
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in entries.items():
        if (section, name) not in broken:
            kept[name] = value
            continue
        part = _salvage(section, name, value, problems)
        if part is not None:
            kept[name] = part
            salvaged.add((section, name))
    return kept


def _salvage(section: str, name: str, value: Any, problems: list[Problem]) -> dict[str, Any] | None:
    if section not in _SALVAGE or not isinstance(value, dict):
        return None
    keys, filler = _SALVAGE[section]
    if keys[0] not in value or any(
        p.path[:3] in {(section, name, k) for k in keys} for p in problems
    ):
        return None
    return {**{k: value[k] for k in keys if k in value}, **filler}


def _validated(data: dict[str, Any]) -> TaskkitConfig | None:
    try:
        return TaskkitConfig.model_validate(data)
    except ValidationError:
        return None


__all__ = ["LoadedConfig", "load_config", "parse_config", "read_config"]
