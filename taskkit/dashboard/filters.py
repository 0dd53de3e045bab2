"""Jinja filters that turn times and counts into what a person scans: "3 min ago", "1,204"."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def span(seconds: float | None) -> str:
    """``seconds`` as the largest unit or two: "45 s", "3 min", "2 h 5 min", "0.2 s"."""
    if seconds is None:
        return "-"
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds >= 0.1 or seconds == 0 else f"{seconds * 1000:.0f} ms"
    for size, unit in _UNITS:
        if seconds >= size:
            whole, rest = divmod(int(seconds), size)
            text = f"{whole} {unit}"
            smaller = next(((s, u) for s, u in _UNITS if s < size), None)
            if smaller and whole < 10 and rest >= smaller[0]:
                text += f" {rest // smaller[0]} {smaller[1]}"
            return text
    return f"{seconds:.0f} s"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """A time relative to now: "3 min ago", "in 5 s"; "-" for none."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"{span(delta)} ago" if delta > 0 else f"in {span(delta)}"


def stamp(moment: datetime | None) -> str:
    """A UTC time to the second, for a tooltip or a detail page."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse(text: str | None) -> datetime | None:
    """An ISO 8601 time (as ``taskkit status`` writes them) as a datetime."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def count(value: int | None) -> str:
    """``1204`` as ``1,204``."""
    return "-" if value is None else f"{value:,}"


def as_json(value: Any) -> str:
    """A value as indented JSON (arguments, meta), anything unusual as its string."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


FILTERS: dict[str, Callable[..., Any]] = {
    "span": span,
    "ago": ago,
    "stamp": stamp,
    "count": count,
    "parse": parse,
    "as_json": as_json,
}


def register(bp: Blueprint) -> None:
    """Make the filters available to the dashboard's templates (as ``taskkit_<name>``)."""
    for name, function in FILTERS.items():
        bp.add_app_template_filter(function, f"taskkit_{name}")


__all__ = ["ago", "as_json", "count", "parse", "register", "span", "stamp"]
