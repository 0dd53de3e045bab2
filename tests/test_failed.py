"""``taskkit failed list | show | requeue | purge`` against real failed jobs."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from rq.job import Job, JobStatus
from worker_support import WorkerCli

from taskkit.cli import cli, main
from taskkit.failed import FailedJob
from taskkit.redaction import describe_call, is_secret_name, positional_names, scrub
from taskkit.registry import META_KEY, Registry
from taskkit.testing import run_burst_worker

SECRETS = ("hunter22", "k-123456", "tok-abcdef", "s3cr3t-pw")


def invoke(*args: str, input: str | None = None) -> str:
    done = CliRunner().invoke(cli, list(args), input=input)
    assert done.exit_code == 0, done.output
    return done.output


def failed_json(config: Path, *args: str) -> list[dict[str, Any]]:
    output = invoke("failed", "list", "-c", str(config), "--json", *args)
    data: list[dict[str, Any]] = json.loads(output)
    return data


def status_of(registry: Registry, job: Job) -> JobStatus:
    fetched = Job.fetch(job.id, connection=registry.connection, serializer=registry.serializer)
    return fetched.get_status()


# -- list and show -------------------------------------------------------------------------


def test_list_shows_job_name_arguments_and_reason_with_secrets_hidden(
    ops: Registry, ops_config: Path
) -> None:
    by_keyword = ops.enqueue("login", user="bob", password="hunter22", api_key="k-123456")
    positional = ops.enqueue("login", "eve", "s3cr3t-pw")
    flag = ops.enqueue("needs_flag", flag="flag-1", token="tok-abcdef", user="ann")
    run_burst_worker(ops)

    listed = {job["id"]: job for job in failed_json(ops_config)}

    assert listed[by_keyword.id]["job"] == "login"
    assert listed[by_keyword.id]["queue"] == "high"
    assert listed[by_keyword.id]["kwargs"] == {"user": "bob", "password": "***", "api_key": "***"}
    assert listed[positional.id]["args"] == ["eve", "***"]  # named through the signature
    assert listed[flag.id]["kwargs"] == {"flag": "flag-1", "token": "***", "user": "ann"}
    assert listed[flag.id]["reason"] == "RuntimeError: flag flag-1 is not set"
    # The job quoted its password in the exception: masked there too.
    assert listed[by_keyword.id]["reason"] == (
        "PermissionError: login refused for bob with password '***'"
    )
    table = invoke("failed", "list", "-c", str(ops_config))
    assert "FAILED (3)" in table
    everything = table + json.dumps(listed)
    assert not [secret for secret in SECRETS if secret in everything]


def test_list_for_one_job_and_show_with_the_whole_traceback(
    ops: Registry, ops_config: Path
) -> None:
    job = ops.enqueue("login", user="bob", password="hunter22")
    ops.enqueue("needs_flag", flag="flag-1")
    run_burst_worker(ops)

    (only,) = failed_json(ops_config, "--job", "login")
    shown = invoke("failed", "show", "-c", str(ops_config), job.id)

    assert only["id"] == job.id
    assert f"id:      {job.id}\njob:     login\nqueue:   high\n" in shown
    assert 'kwargs:  {"user": "bob", "password": "***"}' in shown
    assert "Traceback (most recent call last):" in shown
    assert 'opsjobs.py", line' in shown
    assert shown.rstrip().endswith("PermissionError: login refused for bob with password '***'")
    assert "hunter22" not in shown


# -- requeue -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_requeued_job_runs_again_and_finishes(
    ops: Registry, ops_config: Path, worker_cli: WorkerCli, redis_conn: redis.Redis
) -> None:
    config = str(ops_config)
    job = ops.enqueue("needs_flag", flag="fixed", user="ann")
    first = worker_cli.run("run-worker", "-c", config, "--burst")
    assert first.returncode == 0, first.stderr
    assert status_of(ops, job) == JobStatus.FAILED

    redis_conn.set("fixed", 1)  # the "fix": what the job needs is there now
    assert invoke("failed", "requeue", "-c", config, job.id) == "requeued 1 job\n"
    assert status_of(ops, job) == JobStatus.QUEUED
    second = worker_cli.run("run-worker", "-c", config, "--burst")

    assert second.returncode == 0, second.stderr
    finished = Job.fetch(job.id, connection=ops.connection, serializer=ops.serializer)
    assert finished.get_status() == JobStatus.FINISHED
    assert finished.return_value() == "done for ann"
    assert failed_json(ops_config) == []


def test_requeue_by_job_name_and_all(ops: Registry, ops_config: Path) -> None:
    config = str(ops_config)
    flaky = [ops.enqueue("fail_first_time", marker=f"m{i}") for i in range(2)]
    login = ops.enqueue("login", user="bob", password="hunter22")
    run_burst_worker(ops)
    assert len(failed_json(ops_config)) == 3

    assert invoke("failed", "requeue", "-c", config, "--job", "fail_first_time") == (
        "requeued 2 jobs\n"
    )
    run_burst_worker(ops)
    assert [status_of(ops, job) for job in flaky] == [JobStatus.FINISHED] * 2
    assert invoke("failed", "requeue", "-c", config, "--all") == "requeued 1 job\n"
    assert status_of(ops, login) == JobStatus.QUEUED


@pytest.mark.parametrize(
    "case",
    [
        (["failed", "requeue"], 2, "give job ids, or --job NAME, or --all (one of them)"),
        (["failed", "requeue", "x", "--all"], 2, "give job ids, or --job NAME, or --all"),
        (["failed", "requeue", "no-such-id"], 1, "not in a failed registry: no-such-id"),
        (["failed", "requeue", "--job", "lgin"], 1, "did you mean 'login'?"),
        (["failed", "list", "--job", "lgin"], 1, "error: no job named 'lgin'"),
        (["failed", "show", "no-such-id"], 1, "no failed job 'no-such-id'"),
        (["failed", "purge", "no-such-id"], 1, "not in a failed registry: no-such-id"),
    ],
)
def test_mistakes_are_one_clear_line(
    ops: Registry,
    ops_config: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[list[str], int, str],
) -> None:
    args, code, message = case
    with pytest.raises(SystemExit) as exited:
        main([*args, "-c", str(ops_config)])  # the console entry point, in this process
    stderr = capsys.readouterr().err
    assert exited.value.code == code, stderr
    assert message in stderr
    assert "Traceback" not in stderr


# -- purge ---------------------------------------------------------------------------------


def test_purge_by_id_by_job_and_all(ops: Registry, ops_config: Path) -> None:
    config = str(ops_config)
    first, second = (ops.enqueue("login", user=u, password="pw") for u in ("a", "b"))
    ops.enqueue("needs_flag", flag="f")
    ops.enqueue("needs_flag", flag="g")
    run_burst_worker(ops)

    assert invoke("failed", "purge", "-c", config, first.id) == "deleted 1 failed job\n"
    assert not Job.exists(first.id, connection=ops.connection)
    assert invoke("failed", "purge", "-c", config, "--job", "login") == "deleted 1 failed job\n"
    assert not Job.exists(second.id, connection=ops.connection)
    refused = CliRunner().invoke(cli, ["failed", "purge", "-c", config], input="n\n")
    assert refused.exit_code == 1
    assert "delete every failed job?" in refused.output
    assert len(failed_json(ops_config)) == 2
    assert invoke("failed", "purge", "-c", config, "--yes") == "deleted 2 failed jobs\n"
    assert failed_json(ops_config) == []


# -- redaction rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["password", "passwd", "db_password", "PASSWORD", "pwd", "token", "access_token",
     "refreshToken", "api_key", "apikey", "apiKey", "x-api-key", "secret", "client_secret",
     "auth", "auth_header", "Authorization", "credentials", "private_key", "cookie",
     "session_key", "signature", "userPassword2"],
)  # fmt: skip
def test_secret_names_are_hidden(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["user", "author", "author_id", "passenger", "bypass_cache", "tokenizer", "email"]
)
def test_ordinary_names_are_shown(name: str) -> None:
    assert not is_secret_name(name)


def test_positional_arguments_are_named_through_the_signature() -> None:
    def job(user: str, password: str, /, *rest: str, token: str = "") -> None: ...

    signature = inspect.signature(job)
    assert positional_names(signature, 4) == ["user", "password", "rest", "rest"]
    assert positional_names(None, 2) == ["", ""]


def test_scrub_masks_secret_values_and_url_passwords() -> None:
    text = "cannot log in with 'hunter22' to redis://:hunter23@db:6379/0 (pw 'ab')"
    assert scrub(text, ["hunter22", "ab"]) == (
        "cannot log in with '***' to redis://:***@db:6379/0 (pw 'ab')"
    )


def test_describe_call_hides_secret_arguments() -> None:
    def login(user: str, password: str, api_key: str = "") -> None: ...

    described = describe_call(
        "login", ["ann", "hunter22"], {"api_key": "k"}, inspect.signature(login)
    )
    assert described == "login('ann', '***', api_key='***')"


# -- a unique id prefix, and the reason in one line ------------------------------------------


def test_show_takes_a_unique_id_prefix_and_says_when_one_is_ambiguous(
    ops: Registry, ops_config: Path
) -> None:
    for job_id in ("abc-1", "abd-2"):
        ops.queue("default").enqueue(
            "opsjobs.needs_flag",
            kwargs={"flag": job_id},
            job_id=job_id,
            meta={META_KEY: "needs_flag"},
        )
    assert run_burst_worker(ops).failed == 2

    assert invoke("failed", "show", "-c", str(ops_config), "abc").startswith("id:      abc-1\n")
    code, out, err = run_main("failed", "show", "-c", str(ops_config), "ab")
    assert (code, out) == (1, "")
    assert err == (
        "error: 'ab' starts the ids of 2 failed jobs (abc-1, abd-2); give more of the id\n"
    )
    code, _, err = run_main("failed", "show", "-c", str(ops_config), "abx")
    assert (code, err) == (1, "error: no failed job 'abx'; see `taskkit failed list`\n")


def run_main(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exited:
            code = int(exited.code or 0)
    return code, out.getvalue().decode(), err.getvalue().decode()


TRACEBACK_HEAD = """\
Traceback (most recent call last):
  File "/app/jobs.py", line 3, in job
    raise ValueError(message)
    ^^^^^^^^^^^^^^^^^^^^^^^^^
"""


@pytest.mark.parametrize(
    ("exc_info", "reason"),
    [
        (TRACEBACK_HEAD + "ValueError: bad input\n", "ValueError: bad input"),
        (  # the traceback's last line would be "got: 7"
            TRACEBACK_HEAD + "ValueError: the amount is wrong\n  expected: 5\n  got: 7\n",
            "ValueError: the amount is wrong expected: 5 got: 7",
        ),
        (  # a chained exception: the one that ended the job
            TRACEBACK_HEAD + "KeyError: 'x'\n\nDuring handling of the above exception, another "
            "exception occurred:\n\n" + TRACEBACK_HEAD + "RuntimeError: lookup failed\n",
            "RuntimeError: lookup failed",
        ),
        (
            "UndeclaredJobError: refused: names nothing declared",
            "UndeclaredJobError: refused: names nothing declared",
        ),
        ("", "(no exception recorded)"),
    ],
)
def test_the_reason_is_the_exception_type_and_message(exc_info: str, reason: str) -> None:
    assert FailedJob("id", "q", "job", [], {}, None, exc_info).reason == reason
