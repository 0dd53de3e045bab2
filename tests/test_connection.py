"""Redis URL forms end to end (TLS, unix socket, Sentinel), the override, and URL errors.

Each form gets private redis-server processes on free ports (or a socket in tmp_path),
stopped at the end; nothing here touches the shared test server except through the
``redis_url`` fixture's own database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from ops_support import (
    RedisProcess,
    cli_env,
    free_port,
    pings,
    plain_server_args,
    redis_server_binary,
    write_jobs_yaml,
)
from rq.job import Job, JobStatus

from taskkit import connection
from taskkit.cli import cli
from taskkit.config import SecretUrl
from taskkit.errors import RedisUnavailableError
from taskkit.redis_server import EmbeddedRedis
from taskkit.registry import load

MASTER_PASSWORD = "m4ster-secret"
SENTINEL_PASSWORD = "sent1nel-secret"


def taskkit(config: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``taskkit ARGS -c config`` in a subprocess with ``REDIS_URL=url``."""
    return subprocess.run(
        [sys.executable, "-m", "taskkit", *args, "-c", str(config)],
        env=cli_env(REDIS_URL=url, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def enqueue_and_work(
    config: Path,
    url: str,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    worker_class: str = "fork",
) -> None:
    """Enqueue, run ``taskkit run-worker --burst``, and check the job finished in Redis.

    A ``spawn`` horse connects anew, from what its worker passes it (taskkit.worker.spawn).
    """
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.delenv("TASKKIT_REDIS_URL", raising=False)
    registry = load(config, cached=False)
    job = registry.enqueue("ping", value="over the wire")
    worked = taskkit(config, url, "run-worker", "--burst", "--worker-class", worker_class)
    assert worked.returncode == 0, worked.stderr

    job = Job.fetch(job.id, connection=client, serializer=registry.serializer)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == "over the wire"
    status = CliRunner().invoke(cli, ["status", "--json", "-c", str(config)])
    assert status.exit_code == 0, status.output
    default = json.loads(status.output)["queues"][1]
    assert (default["name"], default["finished"]) == ("default", 1)
    registry.connection.close()


# -- rediss:// -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsServer:
    url: str
    port: int
    ca: Path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    _skip_without_tls(directory, cert, key)
    port = free_port()
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={cert}"
    args = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no"]  # fmt: skip
    with RedisProcess(args, pings(url), directory):
        yield TlsServer(url, port, cert)


def _skip_without_tls(directory: Path, cert: Path, key: Path) -> None:
    """Skip if this redis-server was built without TLS (it rejects the TLS options)."""
    probe = subprocess.run(
        [redis_server_binary(), "--port", "0", "--tls-port", "0", "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--test-memory", "1"],
        capture_output=True, text=True, timeout=60, cwd=directory, check=False,
    )  # fmt: skip
    said = probe.stdout + probe.stderr
    if "tls" in said.lower() and ("not" in said.lower() or "bad directive" in said.lower()):
        pytest.skip(f"this redis-server has no TLS support: {said.strip()[:200]}")


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["fork", "spawn"])
def test_rediss_enqueue_and_a_burst_worker_over_tls(
    tls_server: TlsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_class: str
) -> None:
    client = redis.Redis.from_url(tls_server.url)
    client.flushall()
    enqueue_and_work(write_jobs_yaml(tmp_path), tls_server.url, client, monkeypatch, worker_class)
    client.close()


def test_rediss_without_the_ca_says_how_to_pass_it(tls_server: TlsServer, tmp_path: Path) -> None:
    url = f"rediss://:{MASTER_PASSWORD}@localhost:{tls_server.port}/0"
    done = taskkit(write_jobs_yaml(tmp_path), url, "status")

    assert done.returncode == 1
    assert "certificate verify failed" in done.stderr
    assert "add ?ssl_ca_certs=/path/to/ca.pem to the rediss:// URL" in done.stderr
    assert MASTER_PASSWORD not in done.stderr
    assert len(done.stderr.splitlines()) == 1


# -- unix:// -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["fork", "spawn"])
def test_unix_socket_enqueue_and_a_burst_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_class: str
) -> None:
    with EmbeddedRedis(unix_socket=True, db=3) as server:
        assert server.url.startswith("unix://")
        client = redis.Redis.from_url(server.url)
        enqueue_and_work(write_jobs_yaml(tmp_path), server.url, client, monkeypatch, worker_class)
        client.close()


# -- redis+sentinel:// ---------------------------------------------------------------------


@dataclass(frozen=True)
class SentinelSetup:
    master_port: int
    sentinel_port: int

    def url(self, password: str = MASTER_PASSWORD, service: str = "mymaster") -> str:
        return (
            f"redis+sentinel://:{password}@127.0.0.1:{self.sentinel_port}/{service}/2"
            f"?sentinel_password={SENTINEL_PASSWORD}"
        )

    def master(self) -> redis.Redis:
        return redis.Redis(port=self.master_port, password=MASTER_PASSWORD, db=2)


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    directory = tmp_path_factory.mktemp("sentinel")
    master_port, sentinel_port = free_port(), free_port()
    master_args = plain_server_args(master_port, "--requirepass", MASTER_PASSWORD)
    config = directory / "sentinel.conf"  # sentinel rewrites its file: one of its own
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {directory}\n"
        f"requirepass {SENTINEL_PASSWORD}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
        f"sentinel auth-pass mymaster {MASTER_PASSWORD}\n",
        encoding="utf-8",
    )
    master_url = f"redis://:{MASTER_PASSWORD}@127.0.0.1:{master_port}/0"
    sentinel_url = f"redis://:{SENTINEL_PASSWORD}@127.0.0.1:{sentinel_port}/0"

    def knows_master() -> bool:
        client = redis.Redis.from_url(sentinel_url)
        try:
            return client.execute_command("SENTINEL", "masters") != []  # type: ignore[no-any-return]
        finally:
            client.close()

    with (
        RedisProcess(master_args, pings(master_url), directory),
        RedisProcess([str(config), "--sentinel"], knows_master, directory),
    ):
        yield SentinelSetup(master_port, sentinel_port)


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["fork", "spawn"])
def test_sentinel_enqueue_and_a_burst_worker(
    sentinel: SentinelSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_class: str
) -> None:
    client = sentinel.master()
    client.flushdb()
    enqueue_and_work(write_jobs_yaml(tmp_path), sentinel.url(), client, monkeypatch, worker_class)
    client.close()


def test_connect_through_sentinel_finds_the_master(sentinel: SentinelSetup) -> None:
    client = connection.connect(SecretUrl(sentinel.url()))
    client.set("through-sentinel", "yes")
    assert sentinel.master().get("through-sentinel") == b"yes"
    client.close()


def test_taskkit_dev_uses_a_sentinel_that_answers(sentinel: SentinelSetup) -> None:
    from taskkit.dev import find_redis

    url, started = find_redis(SecretUrl(sentinel.url()))
    assert (url, started) == (sentinel.url(), None)  # never a throwaway server instead


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("wrong password", "refused the password; check the password in redis.url"),
        ("unknown service", "is not reachable (No master found for 'nomaster')"),
        ("no sentinel", "is not reachable (No master found for 'mymaster');"),
    ],
)
def test_sentinel_errors_are_short_and_never_show_a_password(
    sentinel: SentinelSetup, tmp_path: Path, which: str, expected: str
) -> None:
    url = {
        "wrong password": sentinel.url(password="Wr0ng-pass"),
        "unknown service": sentinel.url(service="nomaster"),
        "no sentinel": sentinel.url().replace(f":{sentinel.sentinel_port}/", f":{free_port()}/"),
    }[which]
    done = taskkit(write_jobs_yaml(tmp_path), url, "status")

    assert done.returncode == 1
    assert expected in done.stderr
    for secret in (MASTER_PASSWORD, SENTINEL_PASSWORD, "Wr0ng-pass"):
        assert secret not in done.stderr
    assert "<redis." not in done.stderr  # no client reprs from redis-py
    assert len(done.stderr.splitlines()) == 1


# -- the TASKKIT_REDIS_URL override -------------------------------------------------------


def test_the_override_wins_over_jobs_yaml(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_jobs_yaml(tmp_path, url="redis://127.0.0.1:1/0")  # nothing listens there
    monkeypatch.setenv("TASKKIT_REDIS_URL", redis_url)
    monkeypatch.delenv("REDIS_URL", raising=False)

    registry = load(config, cached=False)
    job = registry.enqueue("ping")
    done = taskkit(config, "unused", "status", "--json", TASKKIT_REDIS_URL=redis_url)

    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["redis"] == redis_url
    assert status["queues"][1]["queued"] == 1
    assert Job.exists(job.id, connection=redis.Redis.from_url(redis_url))


def test_effective_url(monkeypatch: pytest.MonkeyPatch) -> None:
    configured = SecretUrl("redis://:pw@db:6379/0")
    monkeypatch.delenv("TASKKIT_REDIS_URL", raising=False)
    assert connection.effective_url(configured) is configured
    monkeypatch.setenv("TASKKIT_REDIS_URL", "  ")
    assert connection.effective_url(configured) is configured
    monkeypatch.setenv("TASKKIT_REDIS_URL", "rediss://:other@cache:6380/1")
    chosen = connection.effective_url(configured)
    assert chosen.reveal() == "rediss://:other@cache:6380/1"
    assert str(chosen) == "rediss://:***@cache:6380/1"


def test_a_bad_override_is_an_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKKIT_REDIS_URL", "http://:hunter22@db/0")
    with pytest.raises(RedisUnavailableError) as error:
        connection.effective_url(SecretUrl("redis://localhost/0"))
    assert str(error.value).startswith("$TASKKIT_REDIS_URL is not a valid Redis URL: ")
    assert "hunter22" not in str(error.value)


# -- malformed URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:hunter22@localhost:port/0", "the port is not a number from 1 to 65535"),
        ("redis+sentinel://:hunter22@h:x/mymaster", "the port is not a number"),
        ("redis+sentinel://:hunter22@h/mymaster/zero", "the path is not /service or"),
        ("redis+sentinel://:hunter22@h", "names no service"),
        (
            "redis+sentinel://:hunter22@h/m?sentinel_pass=x",
            "unknown query option 'sentinel_pass' (did you mean 'sentinel_password'?)",
        ),
        ("redis://:hunter22@localhost/1O", "the database number (the /N after host:port)"),
        ("redis://:hunter22#x@localhost/1", "the URL is malformed"),
    ],
)
def test_a_malformed_url_is_a_clear_error(url: str, expected: str) -> None:
    with pytest.raises(RedisUnavailableError) as error:
        connection.connect(SecretUrl(url))
    assert expected in str(error.value)
    assert "is not a valid Redis URL" in str(error.value)
    assert "hunter22" not in str(error.value)


def test_sentinel_url_parts() -> None:
    parsed = connection.parse_sentinel_url(
        "redis+sentinel://us%40er:p%3Aw@a:1,b,[::1]:3/my%20master/4"
        "?sentinel_password=s&socket_timeout=0.5"
    )
    assert parsed.hosts == [("a", 1), ("b", 26379), ("::1", 3)]
    assert (parsed.service, parsed.db) == ("my master", 4)
    assert (parsed.username, parsed.password) == ("us@er", "p:w")
    assert parsed.sentinel_kwargs == {"password": "s"}
    assert parsed.socket_options == {"socket_timeout": 0.5}
    assert "p:w" not in repr(parsed)


# -- an address that never answers ------------------------------------------------------------


def test_an_address_that_drops_connections_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """A listener whose backlog is full drops new SYNs, as a firewalled host does: the
    client must give up after its connect timeout (redis-py alone waited 59 s here)."""
    import socket

    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))  # the one connection the backlog holds
        done = taskkit(write_jobs_yaml(tmp_path), f"redis://:{MASTER_PASSWORD}@127.0.0.1:{port}/0",
                       "status")  # fmt: skip

    assert done.returncode == 1
    assert "Timeout connecting to server" in done.stderr
    assert MASTER_PASSWORD not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_the_url_may_set_its_own_connect_timeout() -> None:
    client = connection.connect("redis://127.0.0.1:6379/0?socket_connect_timeout=1.5")
    assert client.connection_pool.connection_kwargs["socket_connect_timeout"] == 1.5
    default = connection.connect("redis://127.0.0.1:6379/0")
    assert default.connection_pool.connection_kwargs["socket_connect_timeout"] == 5.0


# -- malformed URLs through every command ------------------------------------------------------

LEAKY = "s3cret"
MALFORMED = [
    # A raw '#', '/' or '?' in the password: redis-py's error quoted the password.
    (f"redis://app:{LEAKY}#x@127.0.0.1/14", "the URL is malformed"),
    (f"redis://app:{LEAKY}/x@127.0.0.1/14", "the URL is malformed"),
    (f"redis://app:{LEAKY}?x@127.0.0.1/14", "the URL is malformed"),
    # The '@' forgotten: `list` printed the URL whole.
    (f"redis://app:{LEAKY}x127.0.0.1/14", "the port is not a number from 1 to 65535"),
    # These silently meant database 0 or were refused only at the first command.
    ("redis://127.0.0.1:6379/1O", "the database number (the /N after host:port)"),
    ("redis://127.0.0.1:6379/1/2", "the database number"),
    ("redis://127.0.0.1:63x79/1", "the port is not a number"),
    ("redis://127.0.0.1:6379/1?db=one", "the query option db is not a whole number"),
    ("redis://127.0.0.1:6379/1?socket_timeout=soon", "socket_timeout is not a number"),
    ("redis://127.0.0.1:6379/1?socket_timout=1", "did you mean 'socket_timeout'?"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("url", "expected"), [MALFORMED[0], MALFORMED[3], MALFORMED[4]])
@pytest.mark.parametrize(
    "command",
    [
        ("validate",),
        ("list",),
        ("status",),
        ("enqueue", "ping"),
        ("failed", "list"),
        ("run-worker", "--burst"),
    ],
)
def test_a_malformed_url_is_one_line_naming_the_part_never_the_password(
    url: str, expected: str, command: tuple[str, ...], tmp_path: Path
) -> None:
    config = write_jobs_yaml(tmp_path)
    done = taskkit(config, url, *command)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    problem, summary = done.stderr.splitlines()
    assert expected in problem
    assert problem.startswith(f"{config}:")
    assert summary == "error: 1 problem in jobs.yaml"
    assert LEAKY not in done.stderr


@pytest.mark.parametrize(("url", "expected"), MALFORMED)
def test_a_malformed_override_names_the_part_never_the_password(
    url: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKKIT_REDIS_URL", url)
    with pytest.raises(RedisUnavailableError) as error:
        connection.effective_url(SecretUrl("redis://localhost/0"))
    assert expected in str(error.value)
    assert LEAKY not in str(error.value)
    with pytest.raises(RedisUnavailableError) as error:
        connection.connect(url)
    assert expected in str(error.value)
    assert LEAKY not in str(error.value)
