"""Sample data for demos and tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from sqlalchemy import func, select

from .db import db
from .models import PENDING, Payment, User, UserSession, utcnow


@dataclass(frozen=True)
class Seeded:
    """Ids of the rows seed() created."""

    user_ids: tuple[int, ...]
    payment_ids: tuple[int, ...]
    #: (user_id, payment_id) for each payment, in creation order
    pairs: tuple[tuple[int, int], ...]


def seed(
    app: Flask,
    users: int = 1,
    payments: int = 1,
    *,
    status: str = PENDING,
    stale_sessions: int = 0,
) -> Seeded:
    """Create ``users`` users with ``payments`` payments each and return their ids.

    Each user also gets one current login session and ``stale_sessions`` sessions
    last seen 90 days ago (which ``cleanup_sessions(30)`` deletes). Safe to call
    more than once: emails continue from the users already present.
    """
    now = utcnow()
    with app.app_context():
        start = db.session.scalar(select(func.count()).select_from(User)) or 0
        created: list[User] = []
        pairs: list[tuple[User, Payment]] = []
        for n in range(start + 1, start + users + 1):
            user = User(email=f"user{n}@example.com", name=f"User {n}")
            db.session.add(user)
            created.append(user)
            db.session.add(UserSession(user=user, last_seen_at=now))
            for _ in range(stale_sessions):
                db.session.add(UserSession(user=user, last_seen_at=now - timedelta(days=90)))
            for k in range(payments):
                payment = Payment(
                    user=user, amount_cents=1999 + 500 * k, currency="EUR", status=status
                )
                db.session.add(payment)
                pairs.append((user, payment))
        db.session.commit()
        return Seeded(
            user_ids=tuple(u.id for u in created),
            payment_ids=tuple(p.id for _, p in pairs),
            pairs=tuple((u.id, p.id) for u, p in pairs),
        )
