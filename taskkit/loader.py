"""Read jobs.yaml safely, keep every node's position, and report mistakes as file:line:col.

The YAML is composed into nodes with libyaml (or PyYAML's pure parser) and walked here
rather than by PyYAML's constructor, so that duplicate keys, tags, aliases, depth and
size are checked on the way, and every value keeps the line and column it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from taskkit.config import TaskkitConfig, check_references, did_you_mean
from taskkit.errors import ConfigError, Problem

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A jobs.yaml larger than this is refused before it is parsed."""
MAX_ALIASES = 100
"""More alias uses than this is refused: it is how an alias bomb ("billion laughs") works."""
MAX_NODES = 500_000
"""Bounds the work of walking a document, whatever aliases it uses."""
MAX_DEPTH = 64
"""Nesting deeper than this is refused; no real jobs.yaml comes close."""

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STANDARD_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_INTERPOLATION = re.compile(r"\$\$|\$\{([^}:]*)(?::-([^}]*))?\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

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


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where each of its parts was written."""

    config: TaskkitConfig
    path: Path
    positions: Positions


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, parse and validate a jobs.yaml; raise :class:`ConfigError` listing every problem.

    Nothing is imported here: callables are resolved by the registry.
    """
    file = Path(path)
    text = _read(file)
    return parse_config(text, str(file), env).with_path(file)


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
    positions = Positions(source)
    data = _parse_yaml(text, positions)
    problems: list[Problem] = []
    data = _Interpolator(os.environ if env is None else env, positions, problems).apply(data, ())
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
            [positions.problem((), f"the document is {kind}", "start it with 'version: 1'")]
        )
    if problems:
        raise ConfigError(problems)
    try:
        config = TaskkitConfig.model_validate(data)
    except ValidationError as error:
        problems = _map_validation_errors(error, positions)
        problems += _references_of_the_rest(data, problems, positions)
        raise ConfigError(sorted(problems, key=lambda p: (p.line, p.column))) from None
    references = [positions.problem(p.path, p.message, p.hint) for p in check_references(config)]
    if references:
        raise ConfigError(references)
    return _Parsed(config, positions)


_SECTIONS = ("queues", "jobs", "schedules")


def _references_of_the_rest(
    data: dict[str, Any], problems: list[Problem], positions: Positions
) -> list[Problem]:
    """Cross-reference problems among the entries that did validate.

    So that one run reports a bad duration and a schedule naming a missing job together,
    the entries with errors are set aside and the rest is validated again.
    """
    broken: set[tuple[str | int, ...]] = {
        p.path[:2] for p in problems if len(p.path) >= 2 and p.path[0] in _SECTIONS
    }
    dropped = {p.path[0] for p in problems if p.path and p.path[0] not in _SECTIONS}
    rest = {
        key: (
            {n: v for n, v in value.items() if (key, n) not in broken}
            if key in _SECTIONS and isinstance(value, dict)
            else value
        )
        for key, value in data.items()
        if key not in dropped
    }
    try:
        partial = TaskkitConfig.model_validate(rest)
    except ValidationError:
        return []
    set_aside = {section: {str(n) for s, n in broken if s == section} for section in _SECTIONS}
    return [
        positions.problem(p.path, p.message, p.hint)
        for p in check_references(partial, also_declared=set_aside)
        if p.path[0] not in dropped
    ]


def _read(file: Path) -> str:
    where = Problem((), "", "", str(file))
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                [
                    _at(
                        where,
                        f"the file is {size} bytes, more than the {MAX_FILE_BYTES} allowed",
                        "split generated schedules out or trim the file",
                    )
                ]
            )
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                _at(
                    where,
                    "no such file",
                    "create it (see the README's jobs.yaml reference), or point "
                    "-c/--config or TASKKIT_CONFIG at yours",
                )
            ]
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            [_at(where, f"not UTF-8 text ({error.reason})", "save the file as UTF-8")]
        ) from None
    except OSError as error:
        raise ConfigError(
            [_at(where, f"cannot be read: {error.strerror}", "check the path and permissions")]
        ) from None


def _at(where: Problem, message: str, hint: str) -> Problem:
    return Problem((), message, hint, where.file, 1, 1)


# -- YAML to plain data, with positions ---------------------------------------------------


def _parse_yaml(text: str, positions: Positions) -> Any:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise ConfigError(
            [positions.problem((), "the document is too large", "keep jobs.yaml under 4 MiB")]
        )
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Walker(loader, positions).walk(node, (), 0)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line, mark.column) if mark else (0, 0)
        what = " ".join(part for part in (error.context, error.problem) if part)
        raise ConfigError(
            [
                Problem(
                    (),
                    f"invalid YAML: {what or 'cannot be parsed'}",
                    _yaml_hint(what),
                    positions.source,
                    line + 1,
                    column + 1,
                )
            ]
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(
            [positions.problem((), f"invalid YAML: {error}", "check the file's syntax")]
        ) from None
    except RecursionError:
        raise ConfigError(
            [positions.problem((), "the document is nested too deeply", "flatten it")]
        ) from None
    finally:
        loader.dispose()


def _yaml_hint(what: str) -> str:
    if "tab" in what:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in what:
        return "quote values that contain ': ' or check the indentation"
    if "found undefined alias" in what:
        return "define the &anchor before using *it"
    return "check indentation, quotes and colons around this place"


class _WalkError(yaml.MarkedYAMLError):
    """A rule of ours broken while walking, reported like a YAML error."""

    def __init__(self, node: yaml.Node, problem: str) -> None:
        super().__init__(problem=problem, problem_mark=node.start_mark)


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, positions: Positions) -> None:
        self.loader = loader
        self.positions = positions
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()

    def walk(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self._count(node, depth)
        self.positions.values.setdefault(path, (node.start_mark.line, node.start_mark.column))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, "tag:yaml.org,2002:seq")
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _count(self, node: yaml.Node, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _WalkError(node, f"more than {MAX_NODES} values in the document")
        if depth > MAX_DEPTH:
            raise _WalkError(node, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            return
        if id(node) in self.seen:
            # The composer hands back the same node object for every *alias of an &anchor.
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _WalkError(node, f"more than {MAX_ALIASES} aliases (*name) are used")
        self.seen.add(id(node))

    def _check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            raise _WalkError(node, f"the tag {node.tag!r} is not allowed here")

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        self._check_tag(node, "tag:yaml.org,2002:map")
        self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<: *defaults)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _WalkError(key_node, "a key must be a plain string")
            key = str(key_node.value)
            if key in result:
                line = self.positions.keys[(*path, key)][0] + 1
                raise _WalkError(key_node, f"duplicate key {key!r} (first written on line {line})")
            child = (*path, key)
            self.positions.keys[child] = (key_node.start_mark.line, key_node.start_mark.column)
            result[key] = self.walk(value_node, child, depth + 1)
        return result

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag not in _STANDARD_TAGS:
            raise _WalkError(node, f"the tag {node.tag!r} is not allowed (safe YAML only)")
        value = self.loader.construct_object(node, deep=True)
        plain = isinstance(node, yaml.ScalarNode) and not node.style  # libyaml says "", PyYAML None
        if plain and not isinstance(value, str):
            self.positions.plain_scalars[path] = str(node.value)
        return value


# -- ${VAR} interpolation ----------------------------------------------------------------


class _Interpolator:
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


# -- pydantic errors to problems ---------------------------------------------------------


def _map_validation_errors(error: ValidationError, positions: Positions) -> list[Problem]:
    problems = [_problem_from(detail, positions) for detail in error.errors()]
    unique = {(p.path, p.message): p for p in problems}
    return list(unique.values())


def _problem_from(detail: ErrorDetails, positions: Positions) -> Problem:
    path = _clean_loc(detail["loc"])
    kind = detail["type"]
    if kind == "extra_forbidden":
        return _unknown_key(path, positions)
    if kind == "missing":
        parent, name = path[:-1], path[-1]
        return positions.problem(
            parent, f"missing required key {name!r}", f"add {name}: under it", at_key=True
        )
    message = _message(detail, path)
    if detail["type"] == "value_error" and "; " in message:
        # Our validators write "what is wrong; how to fix it".
        message, hint = message.split("; ", 1)
        return positions.problem(path, message, hint)
    return positions.problem(path, message, _hint(detail, path, positions))


def _clean_loc(loc: tuple[int | str, ...]) -> Path_:
    # pydantic adds pseudo-steps like "[key]" for dict keys and "function-after[...]".
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and (part.endswith("]") or part == "[key]"))
    )


def _unknown_key(path: Path_, positions: Positions) -> Problem:
    key = str(path[-1])
    choices = _allowed_keys(path[:-1])
    close = did_you_mean(key, choices) if choices else None
    hint = (
        f"did you mean {close!r}?"
        if close
        else (f"allowed keys: {', '.join(choices)}" if choices else "remove it")
    )
    return positions.problem(path, f"unknown key {key!r}", hint, at_key=True)


def _allowed_keys(parent: Path_) -> list[str]:
    model: type[BaseModel] | None = TaskkitConfig
    steps = list(parent)
    while steps and model is not None:
        step = steps.pop(0)
        annotation = (
            model.model_fields[str(step)].annotation if str(step) in model.model_fields else None
        )
        model, steps = _descend(annotation, steps)
    return list(model.model_fields) if model is not None else []


def _descend(annotation: Any, steps: list[str | int]) -> tuple[type[BaseModel] | None, list[Any]]:
    from typing import get_args, get_origin

    if annotation is None:
        return None, steps
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, steps
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is dict and len(args) == 2 and steps:
        return _descend(args[1], steps[1:])
    for arg in args:
        found, rest = _descend(arg, steps)
        if found is not None:
            return found, rest
    return None, steps


def _message(detail: ErrorDetails, path: Path_) -> str:
    if detail["type"] == "string_pattern_mismatch":
        what = "a 'module:function' reference" if path and path[-1] == "func" else "a valid name"
        return f"{detail['input']!r} is not {what}"
    text = detail["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text[0].lower() + text[1:] if text else text


_HINTS = {
    "string_pattern_mismatch": "",
    "literal_error": "",
    "int_parsing": "write a whole number",
    "dict_type": "write a mapping (key: value lines indented under it)",
    "list_type": "write a list, e.g. [a, b]",
    "bool_parsing": "write true or false",
    "datetime_from_date_parsing": "write an ISO datetime, e.g. 2026-12-24T18:00:00",
    "datetime_parsing": "write an ISO datetime, e.g. 2026-12-24T18:00:00",
}


def _hint(detail: ErrorDetails, path: Path_, positions: Positions) -> str:
    kind = detail["type"]
    if kind == "string_type" and path in positions.plain_scalars:
        raw = positions.plain_scalars[path]
        return f"YAML reads the unquoted {raw} as {detail['input']!r}; put it in quotes: '{raw}'"
    if kind == "string_pattern_mismatch" and path and path[-1] == "func":
        return "write 'package.module:function'"
    if kind == "string_pattern_mismatch":
        return "use letters, digits, '_', '-', '.' or ':'"
    if kind == "literal_error" and path == ("version",):
        return "set version: 1"
    return _HINTS.get(kind, "")


__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "LoadedConfig",
    "Positions",
    "load_config",
    "parse_config",
]
