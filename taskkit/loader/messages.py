"""pydantic's validation errors turned into jobs.yaml problems: file:line:col, the key
path, what is wrong in words, and how to fix it (a did-you-mean where one is close)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from taskkit.config import TaskkitConfig, did_you_mean
from taskkit.errors import Problem
from taskkit.loader.positions import Path_, Positions


def map_validation_errors(
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
        found = kind_of(detail["input"])
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


def kind_of(value: Any) -> str:
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
        return f"write text here, not {kind_of(detail['input'])}"
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


__all__ = ["kind_of", "map_validation_errors"]
