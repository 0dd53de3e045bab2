"""enqueue: after_commit: inside a Flask-SQLAlchemy transaction a job is sent when the
session commits and dropped on rollback (savepoints included); outside one, at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flow_support import FLOW_JOBS, events
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from taskkit import Registry


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Row(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)


@pytest.fixture
def taskkit_config_path() -> Path:
    return FLOW_JOBS


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.sqlite'}"
    db.init_app(app)
    with app.app_context():
        db.create_all()
    yield app


def queued(registry: Registry) -> list[str]:
    return registry.queue("default").get_job_ids()


def send(registry: Registry, to: str) -> str:
    return registry.enqueue("mail_after_commit", to=to).id


def test_a_commit_sends_the_job(app: Flask, taskkit_registry: Registry) -> None:
    with app.app_context():
        db.session.add(Row())
        job_id = send(taskkit_registry, "a")
        assert queued(taskkit_registry) == []  # not before the commit
        db.session.commit()
        assert queued(taskkit_registry) == [job_id]
    assert queued(taskkit_registry) == [job_id]  # once


def test_a_rollback_drops_the_job(app: Flask, taskkit_registry: Registry) -> None:
    with app.app_context():
        db.session.add(Row())
        send(taskkit_registry, "a")
        db.session.rollback()
        db.session.commit()  # a later commit of another transaction sends nothing
    assert queued(taskkit_registry) == []


def test_an_app_context_ending_without_a_commit_drops_the_job(
    app: Flask, taskkit_registry: Registry
) -> None:
    with app.app_context():
        db.session.add(Row())
        send(taskkit_registry, "a")
    assert queued(taskkit_registry) == []


def test_a_rolled_back_savepoint_drops_the_jobs_enqueued_inside_it(
    app: Flask, taskkit_registry: Registry
) -> None:
    with app.app_context():
        db.session.add(Row())
        before = send(taskkit_registry, "before")
        with pytest.raises(ValueError), db.session.begin_nested():
            send(taskkit_registry, "inside, rolled back")
            raise ValueError
        with db.session.begin_nested():
            released = send(taskkit_registry, "inside, released")
        assert queued(taskkit_registry) == []
        db.session.commit()
    assert queued(taskkit_registry) == [before, released]


def test_outside_a_transaction_the_job_is_sent_at_once(
    app: Flask, taskkit_registry: Registry
) -> None:
    first = send(taskkit_registry, "no app context")
    with app.app_context():
        second = send(taskkit_registry, "no transaction")
    assert queued(taskkit_registry) == [first, second]


def test_enqueue_many_waits_for_the_commit(app: Flask, taskkit_registry: Registry) -> None:
    with app.app_context():
        db.session.add(Row())
        jobs = taskkit_registry.enqueue_many(
            [("mail_after_commit", (), {"to": "a"}), ("sync_account", (), {"account_id": 1})]
        )
        assert queued(taskkit_registry) == [jobs[1].id]  # the immediate one
        db.session.commit()
    assert queued(taskkit_registry) == [jobs[1].id, jobs[0].id]


def test_eager_mode_runs_the_job_at_the_commit_only(app: Flask, taskkit_registry: Registry) -> None:
    taskkit_registry.eager = True
    connection = taskkit_registry.connection
    with app.app_context():
        db.session.add(Row())
        send(taskkit_registry, "rolled back")
        db.session.rollback()
        db.session.add(Row())
        job = taskkit_registry.enqueue("mail_after_commit", to="committed")
        assert events(connection, "send_mail") == []
        db.session.commit()
    assert [event["to"] for event in events(connection, "send_mail")] == ["committed"]
    assert job.get_status() == "finished"


def test_a_unique_job_enqueued_twice_in_a_transaction_is_sent_once(
    app: Flask, taskkit_registry: Registry
) -> None:
    with app.app_context():
        db.session.add(Row())
        first = taskkit_registry.enqueue("mail_once", to="a")
        taskkit_registry.enqueue("mail_once", to="a")
        db.session.commit()
    assert queued(taskkit_registry) == [first.id]


def test_eager_mode_honours_unique(app: Flask, taskkit_registry: Registry) -> None:
    taskkit_registry.eager = True
    connection = taskkit_registry.connection
    with app.app_context():
        db.session.add(Row())
        first = taskkit_registry.enqueue("mail_once", to="a")
        assert taskkit_registry.enqueue("mail_once", to="a") is first  # waiting: the same job
        db.session.rollback()  # dropped: the key is free again
        db.session.add(Row())
        second = taskkit_registry.enqueue("mail_once", to="a")
        assert second is not first
        assert taskkit_registry.enqueue("mail_once", to="a") is second
        db.session.commit()
        assert taskkit_registry.enqueue("mail_once", to="a") is not second  # it ran: free
    assert [event["to"] for event in events(connection, "send_mail")] == ["a", "a"]
