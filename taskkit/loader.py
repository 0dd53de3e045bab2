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
MAX_ALIASES = 1000
"""More alias uses than this is refused: it is how an alias bomb ("billion laughs") works.

Every time the walk meets a mapping or list it met before counts, including those a
merge (``<<: *base``) copies in; a few hundred jobs sharing an anchor stay under it.
"""
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
        parsed, problems = _parse_partially(_read(file), str(file), env)
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
    data = _parse_yaml(text, positions)
    problems: list[Problem] = []
    data = _Interpolator(os.environ if env is None else env, positions, problems).apply(data, ())
    if not isinstance(data, dict):
        kind = "empty" if data is None else _kind(data)
        return None, [
            positions.problem((), f"the document is {kind}", "start it with 'version: 1'")
        ]
    try:
        config = TaskkitConfig.model_validate(data)
    except ValidationError as error:
        found = _map_validation_errors(error, data, positions)
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
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        # Only text built in Python gets here: a file that is not UTF-8 fails in _read().
        raise _syntax_problem(
            text, positions, _line_column(text, error.start), "the text is not valid Unicode"
        ) from None
    if size > MAX_FILE_BYTES:
        raise ConfigError(
            [
                positions.problem(
                    (),
                    f"the document is {size} bytes, more than the {MAX_FILE_BYTES} allowed",
                    "keep jobs.yaml under 4 MiB",
                )
            ]
        )
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Walker(loader, positions).walk(node, (), 0)
    except _WalkError as error:
        line, column = error.mark.line, error.mark.column
        problem = Problem(
            error.path, error.message, error.hint, positions.source, line + 1, column + 1
        )
        raise ConfigError([problem]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        if error.context in _FROM_START and error.context_mark is not None:
            mark = error.context_mark  # an unclosed quote or a key without ':' begins there
        where = (mark.line, mark.column) if mark else (0, 0)
        what = " ".join(part for part in (error.context, error.problem) if part)
        raise _syntax_problem(text, positions, where, what or "cannot be parsed") from None
    except yaml.reader.ReaderError as error:
        char = error.character
        code = ord(char) if isinstance(char, str) else char
        what = f"{error.reason}: found U+{code:04X}"
        raise _syntax_problem(text, positions, _line_column(text, error.position), what) from None
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


def _syntax_problem(
    text: str, positions: Positions, where: tuple[int, int], what: str
) -> ConfigError:
    line, column = where
    row = _line_of(text, line)
    problem = Problem(
        _path_near(text, line),
        f"invalid YAML: {what}",
        _yaml_hint(what, row, column),
        positions.source,
        line + 1,
        column + 1,
    )
    return ConfigError([problem])


def _line_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index)
    return line, index - (text.rfind("\n", 0, index) + 1)


def _line_of(text: str, line: int) -> str:
    rows = text.split("\n", line + 1)
    return rows[line] if line < len(rows) else ""


_KEY_LINE = re.compile(
    r"""^([ \t]*)("[^"\n]*"|'[^'\n]*'|[^\s#'"{}\[\],&*!|>%@`?:-][^#:\n]*?)[ \t]*:(?:[ \t]|$)"""
)


def _path_near(text: str, line: int) -> Path_:
    """A best guess, from indentation, of the key path at ``line``, for YAML that does not parse."""
    rows = text.split("\n", line + 1)[: line + 1]
    current = rows[-1] if rows else ""
    path: list[str] = []
    # Text at the error that is not a key line is inside whatever is less indented.
    limit = None if _KEY_LINE.match(current) or not current.strip() else _indent(current)
    for row in reversed(rows):
        match = _KEY_LINE.match(row)
        if match is None:
            continue
        indent = _indent(row)
        if limit is None or indent < limit:
            path.insert(0, match.group(2).strip("'\""))
            limit = indent
        if indent == 0:
            break
    return tuple(path)


def _indent(row: str) -> int:
    # A tab is no indentation to YAML; counting it as 4 spaces guesses what the writer meant.
    return len(row.expandtabs(4)) - len(row.expandtabs(4).lstrip(" "))


_FROM_START = ("while scanning a simple key", "while scanning a quoted scalar")
_YAML_HINTS = (
    ("mapping values are not allowed", "quote values that contain ': ' or check the indentation"),
    ("found undefined alias", "define the &anchor before using *it"),
    ("expected a single document", "keep one document: remove the '---' line and what follows"),
    ("found unexpected end of stream", "close the quote, [ or { that is still open"),
    ("did not find expected node content", "close the [ or { and check the commas in it"),
    ("did not find expected ','", "close the [ or { and check the commas in it"),
    ("did not find expected key", "line this key up with the keys above it"),
    ("could not find expected ':'", "write 'key: value', with a space after the colon"),
    ("not allowed", "remove the character, or write it as an escape in double quotes"),
    ("not valid Unicode", "remove the character, or save the file as UTF-8"),
)


def _yaml_hint(what: str, row: str, column: int) -> str:
    if "\t" in row[: column + 1] and not row[:column].strip(" \t"):
        return "indent with spaces, not tabs"
    if "cannot start any token" in what:
        return "put the value in quotes: characters such as @, ` and tabs cannot start one"
    for needle, hint in _YAML_HINTS:
        if needle in what:
            return hint
    return "check indentation, quotes and colons around this place"


_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_KEY_TAGS = _STANDARD_TAGS | {"tag:yaml.org,2002:value"}  # "=" as a key; no tags of others
_TAG_HINT = "jobs.yaml is plain YAML: remove the tag; Python and custom tags are never run"
_SCALAR_KINDS = {
    "tag:yaml.org,2002:int": "whole number",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:timestamp": "date or datetime",
}


class _WalkError(Exception):
    """A rule of ours broken while walking the nodes, reported at the node."""

    def __init__(self, node: yaml.Node, path: Path_, message: str, hint: str) -> None:
        super().__init__(message)
        self.mark = node.start_mark
        self.path = path
        self.message = message
        self.hint = hint


Pairs = dict[str, tuple[yaml.Node, yaml.Node]]


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, positions: Positions) -> None:
        self.loader = loader
        self.positions = positions
        self.nodes = 0
        self.aliases = 0
        self.seen: set[int] = set()
        self.pairs: dict[int, Pairs | None] = {}

    def walk(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self._count(node, path, depth)
        self.positions.values.setdefault(path, (node.start_mark.line, node.start_mark.column))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, path, _SEQ)
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _count(self, node: yaml.Node, path: Path_, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _WalkError(
                node,
                path,
                f"more than {MAX_NODES} values in the document",
                "split the file or write fewer values",
            )
        if depth > MAX_DEPTH:
            raise _WalkError(
                node,
                path,
                f"nested more than {MAX_DEPTH} levels deep",
                "flatten it; no jobs.yaml setting nests this deep",
            )
        if isinstance(node, yaml.ScalarNode):
            return  # a repeated scalar costs no more than any other; MAX_NODES bounds them
        if id(node) in self.seen:
            # The composer hands back the same node object for every *alias of an &anchor.
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _WalkError(
                    node,
                    path,
                    f"more than {MAX_ALIASES} aliases (*name) are used",
                    "write the values out instead of repeating *aliases; "
                    "the limit is there to stop alias bombs",
                )
        self.seen.add(id(node))

    def _check_tag(self, node: yaml.Node, path: Path_, expected: str) -> None:
        if node.tag != expected:
            raise _WalkError(node, path, f"the tag {_tag(node.tag)!r} is not allowed", _TAG_HINT)

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self._pairs(node, path, depth).items():
            child = (*path, key)
            self.positions.keys[child] = (key_node.start_mark.line, key_node.start_mark.column)
            result[key] = self.walk(value_node, child, depth + 1)
        return result

    def _pairs(self, node: yaml.Node, path: Path_, depth: int) -> Pairs:
        """The keys and values of a mapping, with merge keys (``<<: *base``) resolved.

        As the YAML merge key spec says, keys written in the mapping win over merged ones
        and earlier merged mappings win over later ones. Done here rather than by PyYAML's
        flatten_mapping, which reports an overridden merged key as a duplicate key.
        """
        if id(node) in self.pairs:
            known = self.pairs[id(node)]
            if known is None:
                raise _WalkError(
                    node, path, "a merge (<<) includes itself", "merge another mapping"
                )
            return known
        self._check_tag(node, path, _MAP)
        self.pairs[id(node)] = None
        merged: Pairs = {}
        own: Pairs = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                for source in self._merge_sources(value_node, path):
                    self._count(source, path, depth + 1)
                    for key, pair in self._pairs(source, path, depth + 1).items():
                        merged.setdefault(key, pair)
                continue
            key = self._key(key_node, path)
            if key in own:
                first = own[key][0].start_mark.line + 1
                raise _WalkError(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first written on line {first})",
                    "remove one of them; YAML would silently keep only the last",
                )
            own[key] = (key_node, value_node)
        pairs = {**merged, **own}
        self.pairs[id(node)] = pairs
        return pairs

    def _merge_sources(self, node: yaml.Node, path: Path_) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [node]
        sequence = isinstance(node, yaml.SequenceNode) and node.tag == _SEQ
        if sequence and all(isinstance(item, yaml.MappingNode) for item in node.value):
            return list(node.value)
        raise _WalkError(
            node,
            path,
            "a merge (<<) needs a mapping or a list of mappings",
            "write <<: *name, where &name marks a mapping, or <<: [*one, *other]",
        )

    def _key(self, node: yaml.Node, path: Path_) -> str:
        if node.tag not in _KEY_TAGS:
            raise _WalkError(node, path, f"the tag {_tag(node.tag)!r} is not allowed", _TAG_HINT)
        if not isinstance(node, yaml.ScalarNode):
            raise _WalkError(
                node, path, "a key must be a plain string", "write 'name: value' lines"
            )
        return str(node.value)

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag == _STR:
            return node.value  # what the constructor would return, without its overhead
        if node.tag not in _STANDARD_TAGS or node.tag in (_MAP, _SEQ):
            raise _WalkError(node, path, f"the tag {_tag(node.tag)!r} is not allowed", _TAG_HINT)
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError):
            # e.g. "!!int abc", or 2024-13-01, which YAML reads as a date with no 13th month
            raw = str(node.value)
            shown = raw if len(raw) <= 40 else raw[:37] + "..."
            kind = _SCALAR_KINDS.get(node.tag, "value of its type")
            hint = (
                f"fix it, or quote it: '{shown}'" if shown.isprintable() else "fix it, or quote it"
            )
            raise _WalkError(node, path, f"{shown!r} is not a valid {kind}", hint) from None
        plain = isinstance(node, yaml.ScalarNode) and not node.style  # libyaml says "", PyYAML None
        if plain and not isinstance(value, str):
            self.positions.plain_scalars[path] = str(node.value)
        return value


def _tag(tag: str) -> str:
    """A tag as it is written: ``!!python/name:os.system``, ``!custom``."""
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag


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


def _map_validation_errors(
    error: ValidationError, data: dict[str, Any], positions: Positions
) -> list[Problem]:
    problems = [_problem_from(detail, data, positions) for detail in error.errors()]
    unique = {(p.path, p.message): p for p in problems}
    return list(unique.values())


def _problem_from(detail: ErrorDetails, data: dict[str, Any], positions: Positions) -> Problem:
    kind = detail["type"]
    loc = detail["loc"]
    # A missing key is not in the data: keep the last step, the key's name, as it is.
    path = (*_clean_loc(loc[:-1], data), loc[-1]) if kind == "missing" else _clean_loc(loc, data)
    if kind == "extra_forbidden":
        return _unknown_key(path, positions)
    if kind == "missing":
        parent, name = path[:-1], str(path[-1])
        hint = _MISSING_HINTS.get(name, f"add {name}: under it")
        return positions.problem(parent, f"missing required key {name!r}", hint, at_key=True)
    if kind in ("dict_type", "model_type"):
        found = _kind(detail["input"])
        return positions.problem(path, f"expected a mapping, found {found}", _mapping_hint(path))
    message = _message(detail, path)
    # A rule about a whole mapping (a schedule's form) is shown at the mapping's name.
    at_key = isinstance(detail["input"], dict)
    if detail["type"] == "value_error" and "; " in message:
        # Our validators write "what is wrong; how to fix it".
        message, hint = message.split("; ", 1)
        return positions.problem(path, message, hint, at_key=at_key)
    return positions.problem(path, message, _hint(detail, path, positions), at_key=at_key)


_MISSING_HINTS = {
    "version": "add 'version: 1' at the top of the file",
    "func": "add func: package.module:function",
    "factory": "add factory: package.module:create_app",
    "job": "add job: with the name of a job declared under jobs:",
}


def _kind(value: Any) -> str:
    """What YAML read a value as, in words: 'a mapping', 'a list', 'nothing', ..."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    kinds = ((dict, "a mapping"), (list, "a list"), (str, "a string"), ((int, float), "a number"))
    for types, word in kinds:
        if isinstance(value, types):
            return word
    return f"a {type(value).__name__}"


def _printable(name: str | int) -> str:
    text = str(name)
    return text if text.isprintable() else repr(text)


def _mapping_hint(path: Path_) -> str:
    if path and path[-1] == "retry":
        return "write e.g. retry: {max: 3, intervals: [10s, 1m]}"
    if len(path) == 2 and path[0] == "queues":
        return f"write {_printable(path[1])}: {{}} for a queue with no settings of its own"
    if len(path) == 2 and path[0] == "jobs":
        return "indent func: package.module:function under the job's name"
    if len(path) == 2 and path[0] == "schedules":
        return "indent job: and one of cron, every, at under the schedule's name"
    return "write a mapping (key: value lines indented under it)"


def _clean_loc(loc: tuple[int | str, ...], data: Any) -> Path_:
    """The keys and indexes of ``loc``, without pydantic's own steps.

    pydantic adds steps such as "[key]" and "function-after[...]"; telling them apart by
    their text would also drop a user's key that ends in "]", so the data is walked instead.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
    return tuple(path)


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
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "list_type": "write a list, e.g. [a, b]",
    "bool_parsing": "write true or false",
    "datetime_from_date_parsing": "write an ISO datetime, e.g. 2026-12-24T18:00:00",
    "datetime_parsing": "write an ISO datetime, e.g. 2026-12-24T18:00:00",
}


def _hint(detail: ErrorDetails, path: Path_, positions: Positions) -> str:
    kind = detail["type"]
    if kind == "string_type":
        return _string_hint(detail, path, positions)
    if kind == "string_pattern_mismatch":
        if path and path[-1] == "func":
            return "write 'package.module:function'"
        return "use letters, digits, '_', '-', '.' or ':'"
    if kind == "literal_error":
        return _literal_hint(detail, path)
    bounds = detail.get("ctx", {})
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"use {bounds['ge']} or more" if "ge" in bounds else f"use {bounds['le']} or less"
    return _HINTS.get(kind, "")


def _string_hint(detail: ErrorDetails, path: Path_, positions: Positions) -> str:
    if path not in positions.plain_scalars:
        return f"write text here, not {_kind(detail['input'])}"
    raw = positions.plain_scalars[path]
    if raw == str(detail["input"]):
        return f"write it in quotes: '{raw}'"
    return f"YAML reads the unquoted {raw} as {detail['input']!r}; put it in quotes: '{raw}'"


def _literal_hint(detail: ErrorDetails, path: Path_) -> str:
    if path == ("version",):
        return "set version: 1"
    choices = re.findall(r"'([^']*)'", str(detail.get("ctx", {}).get("expected", "")))
    close = did_you_mean(str(detail["input"]), choices)
    return f"did you mean {close!r}?" if close else f"use one of: {', '.join(choices)}"


__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "LoadedConfig",
    "Positions",
    "load_config",
    "parse_config",
    "read_config",
]
