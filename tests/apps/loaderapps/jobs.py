"""Plain job functions, plus a few attributes that are not callables."""

from __future__ import annotations

NOT_CALLABLE = 42
"""A module attribute that `func:` may name by mistake."""


def send_receipt(user_id: int, payment_id: int, *, resend: bool = False) -> str:
    """A job with required arguments, for schedule argument binding."""
    return f"{user_id}:{payment_id}:{resend}"


def cleanup(older_than_days: int = 30) -> int:
    """A job with only an optional argument."""
    return older_than_days


def heartbeat() -> None:
    """A job that takes no arguments."""


class Namespace:
    """Holds a function one attribute deep, for func: module:Namespace.method."""

    @staticmethod
    def nested(value: int = 0) -> int:
        """Reached as loaderapps.jobs:Namespace.nested."""
        return value
