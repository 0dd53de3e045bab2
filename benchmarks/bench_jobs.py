"""Job functions for the benchmark suite (imported by workers; see ``benchmarks/run.py``).

``payments.jobs.noop`` (the example app's) is the no-op both taskkit and bare RQ run; the
functions here are the other jobs the suite needs.
"""

from __future__ import annotations

import hashlib

from flask import has_app_context


def seed_noop() -> None:
    """A no-op written in the "seed's pattern" (shared/reference/rq-worker-flask-context.md).

    Outside an app context it calls the app factory, pushes the new app's context, runs
    the (empty) job body and pops it: what a bare RQ worker runs for every job when each
    job function brings its own context.
    """
    context = None
    if not has_app_context():
        from payments.app import create_app

        app = create_app()
        context = app.app_context()
    try:
        if context is not None:
            context.push()
        # Job code here: nothing, as in payments.jobs.noop.
    finally:
        if context is not None:
            context.pop()


def hash_work(rounds: int = 2000) -> str:
    """A CPU-light job: ``rounds`` SHA-256 digests of 64 bytes (about 2-3 ms here).

    Used for ``--processes 2`` against 1: enough work per job that the single-threaded
    Redis server is not what limits two workers, little enough to stay a "small job".
    """
    digest = b"taskkit".ljust(64, b".")
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest() * 2
    return digest[:8].hex()


def noop_n(n: int = 0) -> int:
    """A no-op with an argument, so that flow-control keys can differ per job."""
    return n
