"""Redis connections from the URL in jobs.yaml, with errors that never show the password."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import redis

from taskkit.config import SecretUrl, redact_url
from taskkit.errors import RedisUnavailableError

T = TypeVar("T")


def connect(url: SecretUrl | str) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``).

    No command is sent: the client connects on first use.
    """
    real = url.reveal() if isinstance(url, SecretUrl) else url
    if real.startswith("redis+sentinel://"):
        return _sentinel_master(real)
    return redis.Redis.from_url(real)


def _sentinel_master(url: str) -> redis.Redis:
    """``redis+sentinel://[:password@]host:port[,host:port]/service_name[/db]``."""
    from redis.sentinel import Sentinel

    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    hosts = []
    for item in netloc.split(","):
        host, _, port = item.partition(":")
        hosts.append((host or "localhost", int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUnavailableError(
            f"{redact_url(url)}: no service name; write redis+sentinel://host:26379/mymaster/0"
        )
    service, db = path[0], int(path[1]) if len(path) > 1 else 0
    options = {k: v[0] for k, v in parse_qs(parts.query).items()}
    password = parts.password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        hosts,
        sentinel_kwargs={"password": options.get("sentinel_password")}
        if "sentinel_password" in options
        else None,
        password=password,
        db=db,
    )
    master: redis.Redis = sentinel.master_for(service)  # type: ignore[no-untyped-call]
    return master


def describe(url: SecretUrl | str) -> str:
    """The URL as it may be shown to people: never with its password."""
    return str(url) if isinstance(url, SecretUrl) else redact_url(url)


@contextmanager
def redis_errors(url: SecretUrl | str, doing: str) -> Iterator[None]:
    """Turn redis-py's connection errors into one clear :class:`RedisUnavailableError`."""
    try:
        yield
    except redis.AuthenticationError:  # a subclass of ConnectionError: test it first
        raise RedisUnavailableError(
            f"cannot {doing}: Redis at {describe(url)} refused the password; "
            "check the password in redis.url"
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise RedisUnavailableError(
            f"cannot {doing}: Redis at {describe(url)} is not reachable ({_reason(error)}); "
            "start Redis or set redis.url (or REDIS_URL) in jobs.yaml to a server that runs"
        ) from None


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    # redis-py puts host and port in the message, never the password; keep it short.
    return text.rstrip(".")


def call(url: SecretUrl | str, doing: str, action: Callable[[], T]) -> T:
    """Run ``action`` with Redis errors turned into :class:`RedisUnavailableError`."""
    with redis_errors(url, doing):
        return action()


__all__ = ["call", "connect", "describe", "redis_errors"]
