"""Redis URLs: check every part, and show them without any part of a password.

redis-py reads a malformed URL without complaint (a database ``/1O`` becomes 0) or with
an error that quotes the password (a raw ``#`` in it makes the rest "the port"). So
each part is checked here first, and no message names a part's value: in a URL
written by hand the password may have ended up in any of them. No IO.
"""

from __future__ import annotations

import difflib
import re
from urllib.parse import parse_qsl, urlencode

ENCODING_HINT = (
    "percent-encode special characters in the user name and password: "
    "# as %23, / as %2F, ? as %3F, @ as %40, % as %25"
)
MASK = "***"

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*", re.IGNORECASE)
_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_EXAMPLES = {
    "redis": "redis://:password@localhost:6379/0",
    "rediss": "rediss://:password@cache.example.com:6380/0",
    "unix": "unix://:password@/run/redis.sock?db=0",
    "redis+sentinel": "redis+sentinel://:password@host1:26379,host2:26379/mymaster/0",
}
# The query options redis-py reads from a URL (redis.connection.URL_QUERY_ARGUMENT_PARSERS
# and the connection classes' keyword arguments): numbers must parse, others pass as text.
_INT_OPTIONS = {"db", "socket_read_size", "max_connections", "health_check_interval"}
_INT_OPTIONS |= {"ssl_min_version", "protocol"}
_FLOAT_OPTIONS = {"socket_timeout", "socket_connect_timeout", "timeout"}
_TEXT_OPTIONS = {
    "socket_keepalive", "retry_on_timeout", "retry_on_error", "ssl_check_hostname",
    "ssl_validate_ocsp", "ssl_validate_ocsp_stapled", "ssl_include_verify_flags",
    "ssl_exclude_verify_flags", "legacy_responses", "username", "password", "client_name",
    "lib_name", "lib_version", "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs",
    "ssl_ca_data", "ssl_ca_path", "ssl_password", "ssl_ciphers", "encoding", "encoding_errors",
}  # fmt: skip
_SENTINEL_FLOAT_OPTIONS = {"socket_timeout", "socket_connect_timeout"}
_SENTINEL_TEXT_OPTIONS = {"sentinel_password", "sentinel_username"}


def url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL and how to fix it ("what; how"), or None if nothing is.

    The message never contains a value from the URL, only the name of the part.
    """
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    example = f"write it as {_EXAMPLES.get(scheme, _EXAMPLES['redis'])}"
    if any(not char.isprintable() or char.isspace() for char in url):
        return f"the URL holds a space or a control character; remove it, or {ENCODING_HINT}"
    netloc, tail = _split_netloc(rest)
    if "#" in url or "@" in tail:
        return (
            "the URL is malformed: a raw '#', '/' or '?' comes before the end of the user "
            f"name and password; {ENCODING_HINT}"
        )
    userinfo, _, hosts = netloc.rpartition("@")
    if _PERCENT.search(userinfo):
        return (
            f"a '%' in the user name or password is not followed by two hex digits; {ENCODING_HINT}"
        )
    path, _, query = tail.partition("?")
    problem = _place_problem(scheme, hosts, path) or _query_problem(scheme, query)
    return f"{problem}; {example}" if problem else None


def _split_netloc(rest: str) -> tuple[str, str]:
    """The user:password@host:port part, and what follows it (path, query, fragment)."""
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return rest[:end], rest[end:]


def _place_problem(scheme: str, hosts: str, path: str) -> str | None:
    if scheme == "unix":
        if hosts:
            return "a unix:// URL names no host (its user:password@ ends with '@/')"
        return None if path.strip("/") else "the unix:// URL names no socket path"
    if scheme == "redis+sentinel":
        found = [_host_problem(item) for item in hosts.split(",")]
        parts = [p for p in path.split("/") if p]
        if not parts:
            return "the URL names no service after the hosts (/mymaster)"
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
            return "the path is not /service or /service/db, with db a whole number"
        return next((p for p in found if p), None)
    return _host_problem(hosts) or _database_problem(path)


def _host_problem(hostport: str) -> str | None:
    bracketed = hostport.startswith("[") and "]" in hostport
    cut = hostport.index("]") + 1 if bracketed else hostport.find(":")
    host, port = (hostport[:cut], hostport[cut:]) if cut >= 0 else (hostport, "")
    if not _HOST.fullmatch(host):
        return "the host name holds characters a host name cannot have"
    if not port:
        return None
    digits = port[1:] if port.startswith(":") else port
    if not (digits.isdigit() and 1 <= int(digits) <= 65535):
        return (
            "the port is not a number from 1 to 65535 (if the part before it is a "
            "user:password, it needs an '@' after it)"
        )
    return None


def _database_problem(path: str) -> str | None:
    number = path[1:] if path.startswith("/") else path
    if number and not number.isdigit():
        return "the database number (the /N after host:port) is not a whole number"
    return None


def _query_problem(scheme: str, query: str) -> str | None:
    sentinel = scheme == "redis+sentinel"
    floats = _SENTINEL_FLOAT_OPTIONS if sentinel else _FLOAT_OPTIONS
    ints = set() if sentinel else _INT_OPTIONS
    texts = _SENTINEL_TEXT_OPTIONS if sentinel else _TEXT_OPTIONS
    for name, value in parse_qsl(query, keep_blank_values=True):
        kind = int if name in ints else float if name in floats else None
        if kind is not None and not _parses(kind, value):
            return f"the query option {name} is not a {'whole ' if kind is int else ''}number"
        if kind is None and name not in texts:
            return _unknown_option(name, sorted(ints | floats | texts))
    return None


def _parses(kind: type[int] | type[float], value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def _unknown_option(name: str, known: list[str]) -> str:
    if not _OPTION_NAME.fullmatch(name):
        return "the query holds an option name redis-py does not know"
    close = next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
    return f"unknown query option {name!r}" + (f" (did you mean {close!r}?)" if close else "")


def redact_url(url: str) -> str:
    """The URL with its user name and password (``user:pw@``, ``?password=``) replaced by
    ``***`` (``redis://:***@host``, ``redis://***@host``).

    Safe to print, log or put in an error message. A URL whose parts cannot be told
    apart for sure (a raw '#', '/' or '?' before an '@', a port that is not a number) is
    shown as ``scheme://***``: any part of it may hold the password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        # No scheme: "user:secret@host" written without one, or a bare secret.
        return f"{MASK}@{url.rpartition('@')[2]}" if "@" in url else url
    shown_scheme = scheme if _SCHEME.fullmatch(scheme) else "?"
    masked = f"{shown_scheme}://{MASK}"
    netloc, tail = _split_netloc(rest)
    userinfo, at, hosts = netloc.rpartition("@")
    if "#" in rest or "@" in tail or any(_host_problem(h) for h in hosts.split(",")):
        return masked
    if scheme.lower() in _EXAMPLES and url_problem(url) is not None:
        return masked
    if at:
        # The user name goes too: in a URL written by hand it may be the password.
        netloc = f"{':' if userinfo.startswith(':') else ''}{MASK}@{hosts}"
    path, question, query = tail.partition("?")
    if "password=" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.endswith("password") else v) for k, v in pairs], safe="*")
    return f"{shown_scheme}://{netloc}{path}{question}{query}"


__all__ = ["ENCODING_HINT", "redact_url", "url_problem"]
