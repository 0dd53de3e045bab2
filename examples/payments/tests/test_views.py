"""The views: completing a payment sends its receipt (eagerly, in tests)."""

from __future__ import annotations

from flask import Flask

from payments.seed import seed


def test_completing_a_payment_sends_its_receipt(app: Flask) -> None:
    (_, payment_id) = seed(app).pairs[0]
    client = app.test_client()

    response = client.post(f"/payments/{payment_id}/complete")

    assert response.status_code == 202
    assert response.json is not None and response.json["job_id"]
    receipt = client.get(f"/receipts/{payment_id}")
    assert receipt.status_code == 200
    assert "Status:   completed" in receipt.text


def test_completing_twice_is_a_conflict(app: Flask) -> None:
    (_, payment_id) = seed(app).pairs[0]
    client = app.test_client()
    assert client.post(f"/payments/{payment_id}/complete").status_code == 202
    assert client.post(f"/payments/{payment_id}/complete").status_code == 409


def test_unknown_payments_and_receipts_are_404(app: Flask) -> None:
    client = app.test_client()
    assert client.post("/payments/999/complete").status_code == 404
    assert client.get("/receipts/999").status_code == 404


def test_a_page_can_poll_the_receipt_jobs_status(app: Flask) -> None:
    (_, payment_id) = seed(app).pairs[0]
    client = app.test_client()
    response = client.post(f"/payments/{payment_id}/complete")
    assert response.json is not None

    polled = client.get(f"/jobs/{response.json['job_id']}")

    assert polled.status_code == 200
    assert polled.json == {"id": response.json["job_id"], "status": "finished", "progress": None}
    assert client.get("/jobs/no-such-job").status_code == 404
