"""Cron expressions: say which field of a bad one is wrong, and catch those that never fire.

croniter decides what is valid; when it refuses an expression, the fields are read
again here only to say what is wrong in words (``month 13 is out of range 1-12``).
No IO.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from croniter import croniter

_FORM = "minute hour day-of-month month day-of-week, e.g. '0 3 * * *'"
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MONTH_DAYS = {month: calendar.monthrange(2024, month)[1] for month in range(1, 13)}  # a leap year


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]

    def value(self, text: str) -> int:
        """One value of this field, as a number; ValueError says what is wrong with it."""
        if text.lower() in self.names:
            return self.names[text.lower()]
        if not text.isdigit():
            named = f" or a name ({', '.join(list(self.names)[:3])}, ...)" if self.names else ""
            raise ValueError(f"{self.name} {text!r} is not a number{named}")
        number = int(text)
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} {number} is out of range {self.low}-{self.high}")
        return number


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("weekday", 0, 7, _WEEKDAYS),  # 0 and 7 are both Sunday
)
# croniter's extensions (L, 15W, sun#2, ?, H): not explained here.
_SPECIAL = re.compile(r"^(?:\d*L?W?|L\w*|.*#.*|\?|H.*)$", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)  # a generated jobs.yaml repeats the same few expressions
def cron_problem(expression: str) -> tuple[str, str] | None:
    """What is wrong with a 5-field cron expression and how to fix it, or None if it is fine."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"{expression!r} has {len(fields)} fields, not 5",
            f"write the 5 fields {_FORM}",
        )
    try:
        parsed = croniter(expression)
    except (ValueError, KeyError, TypeError):
        reason = _field_reason(fields)
        return (
            f"{expression!r} is not a valid cron expression: {reason}"
            if reason
            else f"{expression!r} is not a valid cron expression",
            f"fix that field; the fields are {_FORM}",
        )
    return _never_fires(expression, parsed.expanded)


def _field_reason(fields: list[str]) -> str | None:
    for field, text in zip(_FIELDS, fields, strict=True):
        for item in text.split(","):
            reason = _item_reason(field, item)
            if reason:
                return reason
    return None


def _item_reason(field: _Field, item: str) -> str | None:
    if not item:
        return f"{field.name} has an empty item (two commas in a row, or one at an end)"
    if not item.isdigit() and _SPECIAL.match(item):
        return None
    base, has_step, step = item.partition("/")
    if has_step and not (step.isdigit() and int(step) >= 1):
        return f"{field.name} step {step!r} is not a whole number of 1 or more"
    if base == "*":
        return None
    low, is_range, high = base.partition("-")
    try:
        field.value(low)
        if is_range:
            field.value(high)
    except ValueError as error:
        return str(error)
    return None


def _never_fires(expression: str, expanded: Sequence[Sequence[object]]) -> tuple[str, str] | None:
    """A day of month that none of the chosen months has; the weekday must be '*', since
    cron fires on either when both are restricted."""
    days = [d for d in expanded[2] if isinstance(d, int)]
    if list(expanded[4]) != ["*"] or len(days) != len(expanded[2]):
        return None  # any weekday, '*', L or W days: it fires
    months = [m for m in expanded[3] if isinstance(m, int)]
    chosen = months or list(range(1, 13))
    if any(day <= _MONTH_DAYS[month] for day in days for month in chosen):
        return None
    day_list = ", ".join(str(d) for d in days)
    month_list = ", ".join(calendar.month_name[m] for m in chosen)
    return (
        f"{expression!r} can never fire: {month_list} {'has' if len(chosen) == 1 else 'have'} "
        f"no day {day_list}",
        "pick a day of month that the chosen months have, or L for the last day",
    )


__all__ = ["cron_problem"]
