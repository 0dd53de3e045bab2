"""Background jobs: plain functions, declared in jobs.yaml.

None of them pushes a Flask context or builds an app: taskkit runs each one in
the context its jobs.yaml entry asks for, and in tests they run inside the
test's own context.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import render_template, url_for
from sqlalchemy import delete

from .db import db
from .models import COMPLETED, Payment, Receipt, User, UserSession, utcnow


def send_payment_receipt(user_id: int, payment_id: int) -> str:
    """Send the receipt for a completed payment and return the receipt's URL.

    Needs a request context (``url_for(..., _external=True)``). A second run for
    the same payment fails on the unique receipts.payment_id instead of sending twice.
    """
    user = db.session.get(User, user_id)
    if user is None:
        raise LookupError(f"user {user_id} does not exist")
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.user_id != user.id:
        raise LookupError(f"payment {payment_id} of user {user_id} does not exist")
    if payment.status != COMPLETED:
        raise ValueError(f"payment {payment_id} is {payment.status!r}, not {COMPLETED!r}")

    receipt_url = url_for("payments.receipt", payment_id=payment.id, _external=True)
    body = render_template("receipt.txt", user=user, payment=payment, receipt_url=receipt_url)
    # "Sending" is recording the receipt; a real app would hand `body` to its mailer here.
    db.session.add(Receipt(payment_id=payment.id, user_id=user.id, url=receipt_url, body=body))
    payment.receipt_sent_at = utcnow()
    db.session.commit()
    return receipt_url


def cleanup_sessions(older_than_days: int = 30) -> int:
    """Delete login sessions not seen for ``older_than_days`` days; return how many."""
    if older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    cutoff = utcnow() - timedelta(days=older_than_days)
    result = db.session.execute(delete(UserSession).where(UserSession.last_seen_at < cutoff))
    db.session.commit()
    deleted: int = result.rowcount  # type: ignore[attr-defined]
    return deleted


def heartbeat() -> str:
    """Return the current UTC time as ISO 8601; uses no Flask context at all."""
    return datetime.now(UTC).isoformat()


def fail_always(reason: str = "boom") -> None:
    """Raise RuntimeError every time (for retry and failure demos)."""
    raise RuntimeError(reason)


def noop() -> None:
    """Do nothing (for throughput measurements)."""
