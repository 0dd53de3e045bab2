"""Redis connections from the URL in jobs.yaml, with errors that never show the password.

URL forms (``redis.url`` in jobs.yaml, or ``$TASKKIT_REDIS_URL``, which wins):

- ``redis://[[user]:password@]host[:port][/db]``
- ``rediss://...`` (TLS; e.g. ``?ssl_ca_certs=/etc/ssl/redis-ca.pem``)
- ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
  with optional ``?sentinel_password=...&sentinel_username=...&socket_timeout=...&
  socket_connect_timeout=...``; the password in the userinfo is the one of the
  master (and replicas), as in rq-dashboard's redis-sentinel-url.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from pydantic import ValidationError

from taskkit.config import RedisConfig, SecretUrl, redact_url
from taskkit.errors import RedisUnavailableError
from taskkit.redaction import scrub
from taskkit.urls import url_problem

T = TypeVar("T")

OVERRIDE_VARIABLE = "TASKKIT_REDIS_URL"
"""An environment variable whose URL wins over jobs.yaml's ``redis.url``."""

SENTINEL_PORT = 26379
_SENTINEL_FLOAT_OPTIONS = ("socket_timeout", "socket_connect_timeout")
_SENTINEL_AUTH_OPTIONS = ("sentinel_password", "sentinel_username")


def effective_url(configured: SecretUrl) -> SecretUrl:
    """``$TASKKIT_REDIS_URL`` if set (``taskkit dev`` sets it for its children), else
    ``configured`` (jobs.yaml's ``redis.url``).

    Raises :class:`RedisUnavailableError` if the variable holds something that is not a
    Redis URL; the message never shows its value's password.
    """
    override = os.environ.get(OVERRIDE_VARIABLE, "").strip()
    if not override:
        return configured
    try:
        return RedisConfig(url=override).url
    except ValidationError as error:  # hide_input_in_errors: the message holds no value
        reason = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise RedisUnavailableError(
            f"${OVERRIDE_VARIABLE} is not a valid Redis URL: {reason}; or unset it to use "
            "redis.url from jobs.yaml"
        ) from None


CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a TCP connection. Without it redis-py waits for as long as the
kernel retries its SYNs (59 s measured here) on a host that drops packets, so
``taskkit status`` against a firewalled or dead address hung instead of saying so;
``?socket_connect_timeout=`` in the URL wins."""
CLIENT_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": CONNECT_TIMEOUT,
    # Lets the kernel notice a peer that vanished (host gone, NAT entry dropped) on an
    # idle connection, such as a worker's while it waits for a job.
    "socket_keepalive": True,
}


def connect(url: SecretUrl | str) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``).

    No command is sent: the client connects on first use. A URL that cannot be parsed
    raises :class:`RedisUnavailableError` naming what is wrong (never the password).
    """
    real = url.reveal() if isinstance(url, SecretUrl) else url
    # redis-py reads some malformed URLs without a word (a database "/1O" becomes 0).
    problem = url_problem(real)
    try:
        if problem is not None:
            raise ValueError(problem)
        if real.startswith("redis+sentinel://"):
            return _sentinel_master(parse_sentinel_url(real))
        # Options in the URL win over these defaults (redis-py applies them last).
        if real.startswith("unix://"):  # no TCP: no keepalive (redis-py refuses the option)
            return redis.Redis.from_url(real, socket_connect_timeout=CONNECT_TIMEOUT)
        return redis.Redis.from_url(real, **CLIENT_DEFAULTS)
    except ValueError:
        # redis-py's message may quote a part of the URL, and so of a password: say only
        # what url_problem() can say, which never quotes one.
        reason = (problem or "redis-py cannot read it").partition("; ")[0]
        raise RedisUnavailableError(
            f"{redact_url(real)} is not a valid Redis URL: {reason}; see 'Redis URL forms' in "
            "docs/deployment.md"
        ) from None


@dataclass(frozen=True)
class SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL."""

    hosts: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_kwargs: dict[str, str] = field(default_factory=dict, repr=False)
    socket_options: dict[str, float] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Read ``redis+sentinel://[[user]:password@]host:port[,host:port]/service[/db][?...]``.

    Raises ``ValueError`` with a message that never contains the password.
    """
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, has_password, secret = userinfo.partition(":")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("no service name; write redis+sentinel://host:26379/mymaster/0")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"the path must be /service_name or /service_name/db, not {parts.path!r}")
    sentinel_kwargs, socket_options = _sentinel_options(parts.query)
    return SentinelUrl(
        hosts=[_host_port(item) for item in hostlist.split(",")],
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(user) or None,
        password=unquote(secret) if has_password else None,
        sentinel_kwargs=sentinel_kwargs,
        socket_options=socket_options,
    )


def _host_port(item: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[::1]:port`` -> (host, port)."""
    match = re.fullmatch(r"\s*(\[[^\]]*\]|[^:]*)(?::([^:]*))?\s*", item)
    if match is None or not (match.group(2) or "0").isdigit():
        raise ValueError("a sentinel is not host:port (the port must be a number)")
    host = match.group(1).strip("[]") or "localhost"
    return host, int(match.group(2) or SENTINEL_PORT)


def _sentinel_options(query: str) -> tuple[dict[str, str], dict[str, float]]:
    sentinel_kwargs: dict[str, str] = {}
    socket_options: dict[str, float] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in _SENTINEL_AUTH_OPTIONS:
            sentinel_kwargs[key.removeprefix("sentinel_")] = value
        elif key in _SENTINEL_FLOAT_OPTIONS:
            try:
                socket_options[key] = float(value)
            except ValueError:
                raise ValueError(f"{key}={value!r} is not a number of seconds") from None
        else:
            known = ", ".join(_SENTINEL_AUTH_OPTIONS + _SENTINEL_FLOAT_OPTIONS)
            raise ValueError(f"unknown option {key!r} (known: {known})")
    return sentinel_kwargs, socket_options


def _sentinel_master(url: SentinelUrl) -> redis.Redis:
    from redis.sentinel import Sentinel

    options = {**CLIENT_DEFAULTS, **url.socket_options}
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        url.hosts,
        sentinel_kwargs={**url.sentinel_kwargs, **options},
        username=url.username,
        password=url.password,
        db=url.db,
        **options,
    )
    master: redis.Redis = sentinel.master_for(url.service)  # type: ignore[no-untyped-call, unused-ignore]
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
            f"check the password in {_where_set()}"
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise RedisUnavailableError(
            f"cannot {doing}: Redis at {describe(url)} is not reachable ({_reason(error)}); "
            f"{_fix_for(error)}"
        ) from None


def _where_set() -> str:
    if os.environ.get(OVERRIDE_VARIABLE, "").strip():
        return f"${OVERRIDE_VARIABLE}"
    return "redis.url (or REDIS_URL) in jobs.yaml"


def _fix_for(error: Exception) -> str:
    if "SSL" in str(error) or "certificate" in str(error):
        return (
            "for a self-signed or private CA, add ?ssl_ca_certs=/path/to/ca.pem to the "
            "rediss:// URL"
        )
    return f"start Redis or set {_where_set()} to a server that runs"


# redis-py's sentinel errors append the repr of every client they tried (pools,
# connection kwargs, object addresses): keep only the sentence before it.
_CLIENT_REPR = re.compile(r"\s*:\s*<redis\..*", re.DOTALL)


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = _CLIENT_REPR.sub("", text)
    # redis-py puts host and port in the message, never the password; keep it short.
    return scrub(text).rstrip(".")


def call(url: SecretUrl | str, doing: str, action: Callable[[], T]) -> T:
    """Run ``action`` with Redis errors turned into :class:`RedisUnavailableError`."""
    with redis_errors(url, doing):
        return action()



def write(url: SecretUrl | str, doing: str, action: Callable[[], T]) -> T:
    """Run a write with :func:`call`; a Redis that refuses it is one clear error too.

    An unreachable Redis is reported by :func:`call`; a Redis that refuses the write (out
    of memory, a read-only replica) is reported here, without redis-py's echo of the
    commands, which would show the job's arguments.
    """
    try:
        return call(url, doing, action)
    except redis.ResponseError as error:
        reason = str(error).rsplit("caused error: ", 1)[-1].splitlines()[0].rstrip(".")
        raise RedisUnavailableError(
            f"cannot {doing}: Redis at {describe(url)} refused the write ({reason}); nothing "
            f"was enqueued; {_write_fix(reason)}"
        ) from None


def _write_fix(reason: str) -> str:
    if "maxmemory" in reason or reason.startswith("OOM"):
        return "free memory in Redis (failed and finished jobs, result_ttl) or raise maxmemory"
    if reason.startswith("READONLY"):
        return "point redis.url at the primary, not at a replica"
    return "check the Redis server's log and settings"

__all__ = [
    "OVERRIDE_VARIABLE",
    "SentinelUrl",
    "call",
    "connect",
    "describe",
    "effective_url",
    "parse_sentinel_url",
    "redis_errors",
    "write",
]
