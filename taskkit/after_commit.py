"""``enqueue: after_commit``: a job enqueued inside a Flask-SQLAlchemy transaction is sent
when the session commits, and dropped if it rolls back.

Inside a transaction, the send is kept on the innermost transaction open at the time: a
savepoint (``session.begin_nested()``) or the session's own. When a savepoint is
released its sends move to the transaction around it; when it rolls back they are
dropped, with the rows written inside it. The outermost commit sends them, in the order
they were enqueued; its rollback, or a ``session.close()`` without a commit (Flask-
SQLAlchemy closes the session when the app context ends), drops them. Outside a
transaction (no app context, no Flask-SQLAlchemy, no session yet, or none begun), the
job is sent at once.

SQLAlchemy tells how a transaction ended only through the events before its end: each
savepoint release and each commit fires ``after_commit``, each rollback ``after_rollback``,
right before that transaction's ``after_transaction_end``; the flag they leave is read
there. A transaction that ends with neither (closed) drops its sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context

if TYPE_CHECKING:  # SQLAlchemy is the app's dependency, not taskkit's
    from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("taskkit")

Send = Callable[[], Any]
Pending = tuple[Send, Send | None]  # what to run on commit, and on rollback

_PENDING = "taskkit_after_commit"
_OUTCOME = "taskkit_after_commit_outcome"
_LISTENING = "taskkit_after_commit_listening"


def open_session() -> Session | None:
    """The active app's Flask-SQLAlchemy session if it is inside a transaction, else None.

    Never creates a session: an app context that has not used one has no transaction.
    """
    if not has_app_context():
        return None
    extension = current_app.extensions.get("sqlalchemy")
    scoped = getattr(extension, "session", None)
    registry = getattr(scoped, "registry", None)
    if scoped is None or registry is None or not registry.has():
        return None
    session: Session = scoped()
    return session if session.in_transaction() else None


def defer(session: Session, send: Send, dropped: Send | None = None) -> None:
    """Run ``send`` when ``session``'s transaction commits; ``dropped`` if it rolls back."""
    _listen(session)
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None  # in_transaction() said so
    pending: dict[SessionTransaction, list[Pending]] = session.info.setdefault(_PENDING, {})
    pending.setdefault(transaction, []).append((send, dropped))


def _listen(session: Session) -> None:
    if session.info.get(_LISTENING):
        return
    from sqlalchemy import event

    session.info[_LISTENING] = True
    event.listen(session, "after_commit", _committed)
    event.listen(session, "after_rollback", _rolled_back)
    event.listen(session, "after_transaction_end", _ended)


def _committed(session: Session) -> None:
    session.info[_OUTCOME] = "commit"


def _rolled_back(session: Session) -> None:
    session.info[_OUTCOME] = "rollback"


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if not _is_boundary(transaction):
        return  # a flush's inner transaction: no commit or rollback of its own
    outcome = session.info.pop(_OUTCOME, None)
    sends = session.info.get(_PENDING, {}).pop(transaction, None)
    if not sends:
        return
    if outcome != "commit":
        log.info("%d job(s) enqueued after_commit dropped: the transaction rolled back", len(sends))
        for _, dropped in sends:
            if dropped is not None:
                dropped()
        return
    parent = _enclosing(transaction)
    if parent is not None:  # a savepoint released: its sends wait for the transaction around it
        session.info[_PENDING].setdefault(parent, []).extend(sends)
        return
    for send, _ in sends:
        send()


def _is_boundary(transaction: SessionTransaction) -> bool:
    return transaction.nested or transaction.parent is None


def _enclosing(transaction: SessionTransaction) -> SessionTransaction | None:
    parent = transaction.parent
    while parent is not None and not _is_boundary(parent):
        parent = parent.parent
    return parent


__all__ = ["defer", "open_session"]
