"""YAML to plain data, with positions: jobs.yaml composed into nodes and walked safely.

The YAML is composed into nodes with libyaml (or PyYAML's pure parser) and walked here
rather than by PyYAML's constructor, so that duplicate keys, tags, aliases, depth and
size are checked on the way, and every value keeps the line and column it came from.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from taskkit.errors import ConfigError, Problem
from taskkit.loader.files import MAX_FILE_BYTES
from taskkit.loader.positions import Path_, Positions

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


def parse_yaml(text: str, positions: Positions) -> Any:
    """The plain data of a YAML document, its positions recorded in ``positions``."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        # Only text built in Python gets here: a file that is not UTF-8 fails in read_text().
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


__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "parse_yaml"]
