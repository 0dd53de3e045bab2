"""The Flask-SQLAlchemy handle shared by the app, the views and the jobs."""

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for the payments models."""


db = SQLAlchemy(model_class=Base)
