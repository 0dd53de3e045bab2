"""The jobs, run eagerly inside the test's app context: no worker, no Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from payments.db import db
from payments.models import COMPLETED, Receipt, UserSession
from payments.seed import seed


def enqueue(app: Flask, name: str, **kwargs: object) -> object:
    return app.extensions["taskkit"].enqueue(name, **kwargs).return_value()


def test_send_payment_receipt_records_and_links_the_receipt(app_ctx: Flask) -> None:
    (user_id, payment_id) = seed(app_ctx, status=COMPLETED).pairs[0]

    url = enqueue(app_ctx, "send_payment_receipt", user_id=user_id, payment_id=payment_id)

    assert url == f"http://payments.example.com/receipts/{payment_id}"
    receipt = db.session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
    assert receipt is not None
    assert "Amount:   19.99 EUR" in receipt.body
    assert f"Your receipt is online at {url}" in receipt.body


def test_a_receipt_for_a_pending_payment_is_refused(app_ctx: Flask) -> None:
    (user_id, payment_id) = seed(app_ctx).pairs[0]
    with pytest.raises(ValueError, match="is 'pending', not 'completed'"):
        enqueue(app_ctx, "send_payment_receipt", user_id=user_id, payment_id=payment_id)


def test_cleanup_sessions_deletes_only_stale_sessions(app_ctx: Flask) -> None:
    seed(app_ctx, users=2, stale_sessions=3)
    assert enqueue(app_ctx, "cleanup_sessions", older_than_days=30) == 6
    assert db.session.scalar(select(func.count()).select_from(UserSession)) == 2


def test_enqueue_in_runs_at_once_in_eager_mode(app_ctx: Flask) -> None:
    job = app_ctx.extensions["taskkit"].enqueue_in(timedelta(hours=1), "heartbeat")
    assert job.return_value().endswith("+00:00")


def test_a_failing_job_fails_the_test_that_enqueued_it(app_ctx: Flask) -> None:
    with pytest.raises(RuntimeError, match="declined"):
        enqueue(app_ctx, "fail_always", reason="declined")
