"""HTTP views: complete a payment (which enqueues its receipt), show receipts, and a job's
status and progress for a page that polls it."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify
from sqlalchemy import func, select

import taskkit

from .db import db
from .models import COMPLETED, PENDING, Payment, Receipt

bp = Blueprint("payments", __name__)


@bp.get("/")
def index() -> str:
    """A plain landing page."""
    count = db.session.scalar(select(func.count()).select_from(Payment))
    return f"<h1>Payments</h1><p>{count} payments on record.</p>"


@bp.post("/payments/<int:payment_id>/complete")
def complete(payment_id: int) -> tuple[Response, int]:
    """Mark a pending payment completed and enqueue its receipt."""
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        return jsonify(error=f"payment {payment_id} does not exist"), 404
    if payment.status != PENDING:
        return jsonify(error=f"payment {payment_id} is already {payment.status}"), 409
    payment.status = COMPLETED
    # Commit before enqueueing, so the worker (or an eager run) sees the completed payment.
    db.session.commit()
    job = current_app.extensions["taskkit"].enqueue(
        "send_payment_receipt", user_id=payment.user_id, payment_id=payment.id
    )
    return jsonify(job_id=job.id), 202


@bp.get("/receipts/<int:payment_id>")
def receipt(payment_id: int) -> Response:
    """The receipt of a payment, as sent; the emailed receipt links here."""
    found = db.session.scalar(select(Receipt).where(Receipt.payment_id == payment_id))
    if found is None:
        abort(404)
    return Response(found.body, mimetype="text/plain")


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> tuple[Response, int]:
    """A job's status and progress, for a page that polls it every few seconds.

    ``fetch`` reads the job with jobs.yaml's serializer (RQ's own ``Job.fetch`` would read
    a JSON job with pickle) and returns None for an unknown or expired id.
    """
    job = current_app.extensions["taskkit"].fetch(job_id)
    if job is None:
        return jsonify(error=f"no job {job_id}"), 404
    progress = taskkit.progress_of(job)
    return jsonify(
        id=job.id,
        status=job.get_status().value,
        progress=progress.as_dict() if progress else None,
    ), 200
