"""Reading jobs.yaml: every kind of mistake is one clear FILE:LINE:COL message, never a crash.

The bad files run through ``taskkit.load`` (what ``taskkit validate`` does: parse, validate,
import every func, bind schedule arguments) and through the command line, in process
for all of them and as a real subprocess for a few.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import taskkit
from taskkit.cli import main
from taskkit.config import RetryConfig
from taskkit.errors import ConfigError, Problem
from taskkit.loader import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, load_config, parse_config

APPS = Path(__file__).parent / "apps"
REPO = Path(__file__).parent.parent
PASSWORD = "hunter2-s3cr3t"
UNSET = "TASKKIT_TEST_SURELY_UNSET_VAR"
HEAD = "version: 1\npythonpath: [{apps}]\n"


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what loading does to the process: sys.path entries and imported job modules."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv(UNSET, raising=False)
    yield
    for name in [m for m in sys.modules if m == "loaderapps" or m.startswith("loaderapps.")]:
        del sys.modules[name]


def write(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        text.replace("{apps}", json.dumps(str(APPS))).replace(
            "{marker}", json.dumps(str(tmp_path / "MARKER"))
        ),
        encoding="utf-8",
    )
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        taskkit.load(path, cached=False)
    return caught.value.problems


# -- one bad file per kind of mistake --------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A bad jobs.yaml and the one problem it must be reported as."""

    id: str
    text: str
    line: int
    column: int
    path: str
    message: str
    hint: str
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.id


def yml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def bad(id: str, text: str, at: tuple[int, int], *expected: str) -> Bad:
    """``expected`` is the key path, a part of the message and a part of the hint."""
    path, message, hint = expected
    return Bad(id, yml(text), at[0], at[1], path, message, hint)


JOB = "loaderapps.jobs:heartbeat"
BOMB = "version: 1\nlol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)

BAD = [
    bad(
        "yaml_syntax_unclosed_flow",
        """
        version: 1
        jobs:
          a:
            func: m:f
            retry: {max: 3, intervals: [1s, 2s}
        """,
        (5, 39),
        "jobs.a.retry",
        "invalid YAML: while parsing a flow sequence",
        "close the [ or { and check the commas in it",
    ),
    bad(
        "yaml_syntax_unclosed_quote",
        """
        version: 1
        jobs:
          a:
            func: "m:f
          b:
            func: m:g
        """,
        (4, 11),
        "jobs.a.func",
        "invalid YAML: while scanning a quoted scalar found unexpected end of stream",
        "close the quote, [ or { that is still open",
    ),
    bad(
        "yaml_syntax_key_without_colon",
        """
        version: 1
        jobs:
          a:
            func: m:f
          queue default
          b:
            func: m:g
        """,
        (5, 3),
        "jobs",
        "could not find expected ':'",
        "write 'key: value', with a space after the colon",
    ),
    bad(
        "tab_indentation",
        HEAD + "jobs:\n  a:\n\tfunc: loaderapps.jobs:heartbeat\n",
        (5, 1),
        "jobs.a.func",
        "invalid YAML: while scanning for the next token found character that cannot start",
        "indent with spaces, not tabs",
    ),
    bad(
        "duplicate_key",
        HEAD
        + yml(
            """
        jobs:
          a:
            func: loaderapps.jobs:heartbeat
            timeout: 30s
            timeout: 1m
        """
        ),
        (7, 5),
        "jobs.a.timeout",
        "duplicate key 'timeout' (first written on line 6)",
        "remove one of them; YAML would silently keep only the last",
    ),
    bad(
        "duplicate_job",
        HEAD
        + yml(
            """
        jobs:
          a:
            func: loaderapps.jobs:heartbeat
          a:
            func: loaderapps.jobs:cleanup
        """
        ),
        (6, 3),
        "jobs.a",
        "duplicate key 'a' (first written on line 4)",
        "remove one of them",
    ),
    bad(
        "python_tag",
        HEAD
        + yml(
            """
        jobs:
          a:
            func: loaderapps.jobs:heartbeat
            description: !!python/object/apply:loaderapps.marker.touch [{marker}]
        """
        ),
        (6, 18),
        "jobs.a.description",
        "the tag '!!python/object/apply:loaderapps.marker.touch' is not allowed",
        "jobs.yaml is plain YAML: remove the tag; Python and custom tags are never run",
    ),
    bad(
        "python_tag_on_key",
        HEAD + "!!python/name:os.system jobs: {}\n",
        (3, 1),
        "<document>",
        "the tag '!!python/name:os.system' is not allowed",
        "remove the tag",
    ),
    bad(
        "custom_tag",
        HEAD + "redis:\n  url: !env REDIS_URL\n",
        (4, 8),
        "redis.url",
        "the tag '!env' is not allowed",
        "jobs.yaml is plain YAML: remove the tag",
    ),
    bad(
        "alias_bomb",
        BOMB,
        (3, 7),  # an alias is the anchored node itself: it is shown where it is defined
        "lol4.0.0.8",
        f"more than {MAX_ALIASES} aliases (*name) are used",
        "write the values out instead of repeating *aliases",
    ),
    bad(
        "undefined_alias",
        HEAD + "jobs:\n  a:\n    func: *fn\n",
        (5, 11),
        "jobs.a.func",
        "invalid YAML: found undefined alias",
        "define the &anchor before using *it",
    ),
    # A file too large is a problem of the file, not of a place in it: test_cli_config.py.
    bad(
        "too_deep",
        "version: 1\nnested: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n",
        (2, len("nested: ") + MAX_DEPTH + 1),
        "nested" + ".0" * MAX_DEPTH,
        f"nested more than {MAX_DEPTH} levels deep",
        "flatten it",
    ),
    bad(
        "unknown_top_level_key",
        HEAD + "job:\n  a:\n    func: loaderapps.jobs:heartbeat\n",
        (3, 1),
        "job",
        "unknown key 'job'",
        "did you mean 'jobs'?",
    ),
    bad(
        "unknown_top_level_key_far_from_any",
        HEAD + "concurrency: 3\n",
        (3, 1),
        "concurrency",
        "unknown key 'concurrency'",
        "allowed keys: version, redis, worker, app, pythonpath, serializer, defaults, queues",
    ),
    bad(
        "unknown_job_key",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    timout: 30s\n",
        (6, 5),
        "jobs.a.timout",
        "unknown key 'timout'",
        "did you mean 'timeout'?",
    ),
    bad(
        "unknown_retry_key",
        HEAD
        + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    retry: {max: 2, interval: [1s]}\n",
        (6, 21),
        "jobs.a.retry.interval",
        "unknown key 'interval'",
        "did you mean 'intervals'?",
    ),
    bad(
        "bad_duration",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    timeout: 30 seconds\n",
        (6, 14),
        "jobs.a.timeout",
        "'30 seconds' is not a duration",
        "write seconds such as 45, or a string like 45s, 10m, 2h, 1d, 1h30m",
    ),
    bad(
        "zero_timeout",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    timeout: 0\n",
        (6, 14),
        "jobs.a.timeout",
        "must be more than zero seconds",
        "write a duration such as 30s, 5m or 1h",
    ),
    bad(
        "negative_queue_timeout",
        HEAD + "queues:\n  default: {timeout: -30}\n",
        (4, 22),
        "queues.default.timeout",
        "must be more than zero seconds",
        "write a duration such as 30s, 5m or 1h",
    ),
    bad(
        "negative_ttl",
        HEAD + "defaults:\n  result_ttl: -1\n",
        (4, 15),
        "defaults.result_ttl",
        "must not be negative",
        "write 0 to keep nothing, or a duration such as 1d",
    ),
    bad(
        "retry_not_a_mapping",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    retry: 3\n",
        (6, 12),
        "jobs.a.retry",
        "expected a mapping, found a number",
        "write e.g. retry: {max: 3, intervals: [10s, 1m]}",
    ),
    bad(
        "retry_max_negative",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    retry: {max: -1}\n",
        (6, 18),
        "jobs.a.retry.max",
        "input should be greater than or equal to 0",
        "use 0 or more",
    ),
    bad(
        "retry_interval_not_a_duration",
        HEAD
        + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n"
        + "    retry: {max: 2, intervals: [10s, soon]}\n",
        (6, 38),
        "jobs.a.retry.intervals.1",
        "'soon' is not a duration",
        "write seconds such as 45",
    ),
    bad(
        "missing_version",
        "pythonpath: [{apps}]\njobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n",
        (1, 1),
        "<document>",
        "missing required key 'version'",
        "add 'version: 1' at the top of the file",
    ),
    bad(
        "wrong_version",
        "version: 2\njobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n",
        (1, 10),
        "version",
        "input should be 1",
        "set version: 1",
    ),
    bad(
        "empty_document",
        "# nothing here yet\n",
        (1, 1),
        "<document>",
        "the document is empty",
        "start it with 'version: 1'",
    ),
    bad(
        "missing_func",
        HEAD + "jobs:\n  a:\n    queue: default\n",
        (4, 3),
        "jobs.a",
        "missing required key 'func'",
        "add func: package.module:function",
    ),
    bad(
        "job_without_settings",
        HEAD + "jobs:\n  a:\n",
        (4, 5),
        "jobs.a",
        "expected a mapping, found nothing",
        "indent func: package.module:function under the job's name",
    ),
    bad(
        "malformed_func",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs.heartbeat\n",
        (5, 11),
        "jobs.a.func",
        "'loaderapps.jobs.heartbeat' is not a 'module:function' reference",
        "write 'package.module:function'",
    ),
    bad(
        "func_module_not_found",
        HEAD + "jobs:\n  a:\n    func: loaderapps.no_such_module:run\n",
        (5, 11),
        "jobs.a.func",
        "module 'loaderapps.no_such_module' not found",
        "check the spelling, install the package, or add its folder to pythonpath:",
    ),
    bad(
        "func_module_raises_import_error",
        HEAD + "jobs:\n  a:\n    func: loaderapps.broken_import:run\n",
        (5, 11),
        "jobs.a.func",
        "importing 'loaderapps.broken_import' raised ModuleNotFoundError: "
        "No module named 'nonexistent_pkg_xyz'",
        "the module exists but one of its own imports failed; fix that import",
    ),
    bad(
        "func_module_raises_other_error",
        HEAD + "jobs:\n  a:\n    func: loaderapps.broken_runtime:run\n",
        (5, 11),
        "jobs.a.func",
        "importing 'loaderapps.broken_runtime' raised RuntimeError: "
        "boom while importing broken_runtime",
        "the module exists but fails when imported; fix the error in it",
    ),
    bad(
        "func_no_such_attribute",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:send_reciept\n",
        (5, 11),
        "jobs.a.func",
        "module 'loaderapps.jobs' has no attribute 'send_reciept'",
        "did you mean loaderapps.jobs:send_receipt?",
    ),
    bad(
        "func_not_callable",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:NOT_CALLABLE\n",
        (5, 11),
        "jobs.a.func",
        "loaderapps.jobs:NOT_CALLABLE is a",
        "point func at a function",
    ),
    bad(
        "job_on_undeclared_queue",
        HEAD
        + yml(
            """
        queues:
          default: {}
          emails: {}
        jobs:
          a:
            func: loaderapps.jobs:heartbeat
            queue: email
        """
        ),
        (9, 12),
        "jobs.a.queue",
        "queue 'email' is not declared in queues",
        "did you mean 'emails'?",
    ),
    bad(
        "queue_without_settings",
        HEAD + "queues:\n  critical:\n  default: {}\n",
        (4, 12),
        "queues.critical",
        "expected a mapping, found nothing",
        "write critical: {} for a queue with no settings of its own",
    ),
    bad(
        "schedule_of_undeclared_job",
        HEAD
        + yml(
            """
        jobs:
          heartbeat:
            func: loaderapps.jobs:heartbeat
        schedules:
          tick:
            job: heartbeet
            every: 1m
        """
        ),
        (8, 10),
        "schedules.tick.job",
        "job 'heartbeet' is not declared in jobs",
        "did you mean 'heartbeat'?",
    ),
    bad(
        "bad_cron",
        HEAD
        + yml(
            """
        jobs:
          cleanup:
            func: loaderapps.jobs:cleanup
        schedules:
          nightly:
            job: cleanup
            cron: "0 3 * *"
        """
        ),
        (9, 11),
        "schedules.nightly.cron",
        "'0 3 * *' has 4 fields, not 5",
        "write the 5 fields minute hour day-of-month month day-of-week, e.g. '0 3 * * *'",
    ),
    bad(
        "cron_out_of_range",
        HEAD
        + yml(
            """
        jobs:
          cleanup:
            func: loaderapps.jobs:cleanup
        schedules:
          nightly:
            job: cleanup
            cron: 0 25 * * *
        """
        ),
        (9, 11),
        "schedules.nightly.cron",
        "'0 25 * * *' is not a valid cron expression: hour 25 is out of range 0-23",
        "fix that field",
    ),
    bad(
        "bad_timezone",
        HEAD
        + yml(
            """
        jobs:
          cleanup:
            func: loaderapps.jobs:cleanup
        schedules:
          nightly:
            job: cleanup
            cron: "0 3 * * *"
            timezone: Europe/Berln
        """
        ),
        (10, 15),
        "schedules.nightly.timezone",
        "unknown timezone 'Europe/Berln'",
        "use an IANA name such as UTC, Europe/Berlin or America/New_York",
    ),
    bad(
        "two_schedule_forms",
        HEAD
        + yml(
            """
        jobs:
          cleanup:
            func: loaderapps.jobs:cleanup
        schedules:
          nightly:
            job: cleanup
            cron: "0 3 * * *"
            every: 1d
        """
        ),
        (7, 3),
        "schedules.nightly",
        "a schedule needs exactly one of cron, every, at (found cron, every)",
        "keep one of them",
    ),
    bad(
        "schedule_kwargs_do_not_bind",
        HEAD
        + yml(
            """
        jobs:
          receipt:
            func: loaderapps.jobs:send_receipt
        schedules:
          resend:
            job: receipt
            every: 1h
            kwargs: {user_id: 1, payment: 7}
        """
        ),
        (10, 26),
        "schedules.resend.kwargs.payment",
        "the arguments do not fit loaderapps.jobs:send_receipt(",
        "did you mean 'payment_id'?",
    ),
    bad(
        "schedule_kwargs_missing_one",
        HEAD
        + yml(
            """
        jobs:
          receipt:
            func: loaderapps.jobs:send_receipt
        schedules:
          resend:
            job: receipt
            every: 1h
            kwargs: {user_id: 1}
        """
        ),
        (10, 13),
        "schedules.resend.kwargs",
        "missing a required argument: 'payment_id'",
        "make args/kwargs match the function's parameters",
    ),
    bad(
        "schedule_args_do_not_bind",
        HEAD
        + yml(
            """
        jobs:
          heartbeat:
            func: loaderapps.jobs:heartbeat
        schedules:
          tick:
            job: heartbeat
            every: 1m
            args: [1]
        """
        ),
        (10, 11),
        "schedules.tick.args",
        "too many positional arguments",
        "make args/kwargs match the function's parameters",
    ),
    bad(
        "missing_env_var",
        HEAD + f"redis:\n  url: ${{{UNSET}}}\n",
        (4, 8),
        "redis.url",
        f"environment variable {UNSET} is not set",
        f"set {UNSET}, or give a default: ${{{UNSET}:-value}}",
    ),
    bad(
        "bad_variable_reference",
        HEAD + "redis:\n  url: redis://${1HOST}:6379\n",
        (4, 8),
        "redis.url",
        "'${1HOST}' is not a valid variable reference",
        "write ${NAME} or ${NAME:-default}; use $$ for a literal $",
    ),
    bad(
        "bad_redis_url_scheme",
        HEAD + f"redis:\n  url: http://admin:{PASSWORD}@localhost:6379/0\n",
        (4, 8),
        "redis.url",
        "'http://***@localhost:6379/0' is not a Redis URL",
        "use redis://, rediss://, unix:// or redis+sentinel://",
    ),
    bad(
        "redis_url_without_scheme",
        HEAD + f"redis:\n  url: admin:{PASSWORD}@localhost:6379\n",
        (4, 8),
        "redis.url",
        "the value is not a URL (no scheme://)",
        "use redis://, rediss://, unix:// or redis+sentinel://",
    ),
    bad(
        "context_app_without_app_section",
        HEAD + "defaults:\n  context: app\njobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n",
        (4, 12),
        "defaults.context",
        "context app needs an app",
        "add an app: section with a factory, or set context: none",
    ),
    bad(
        "unknown_context",
        HEAD
        + "app:\n  factory: loaderapps.jobs:heartbeat\njobs:\n  a:\n"
        + "    func: loaderapps.jobs:heartbeat\n    context: ap\n",
        (8, 14),
        "jobs.a.context",
        "input should be 'none', 'app' or 'request'",
        "did you mean 'app'?",
    ),
    bad(
        "unquoted_no",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    queue: no\n",
        (6, 12),
        "jobs.a.queue",
        "input should be a valid string",
        "YAML reads the unquoted no as False; put it in quotes: 'no'",
    ),
    bad(
        "unquoted_time",
        HEAD + "jobs:\n  a:\n    func: loaderapps.jobs:heartbeat\n    description: 12:30\n",
        (6, 18),
        "jobs.a.description",
        "input should be a valid string",
        "YAML reads the unquoted 12:30 as 750; put it in quotes: '12:30'",
    ),
    bad(
        "impossible_date",
        HEAD
        + yml(
            """
        jobs:
          a:
            func: loaderapps.jobs:heartbeat
        schedules:
          once:
            job: a
            at: 2026-13-01
        """
        ),
        (9, 9),
        "schedules.once.at",
        "'2026-13-01' is not a valid date or datetime",
        "fix it, or quote it: '2026-13-01'",
    ),
    bad(
        "merge_of_a_scalar",
        HEAD + "jobs:\n  a:\n    <<: loaderapps.jobs:heartbeat\n",
        (5, 9),
        "jobs.a",
        "a merge (<<) needs a mapping or a list of mappings",
        "write <<: *name, where &name marks a mapping, or <<: [*one, *other]",
    ),
]


def _output_of_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["validate", "-c", str(path)])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _expected_line(case: Bad, path: Path) -> str:
    return f"{path}:{case.line}:{case.column}: {case.path}: "


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", BAD, ids=str)
def test_bad_jobs_yaml(case: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, case.text)

    problems = problems_of(path)
    assert len(problems) == 1, "\n".join(map(str, problems))
    [problem] = problems
    assert (problem.file, problem.line, problem.column) == (str(path), case.line, case.column)
    assert problem.key_path == case.path
    assert case.message in problem.message
    assert case.hint in problem.hint
    assert str(problem).startswith(_expected_line(case, path))

    code, out, err = _output_of_validate(path, capsys)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [str(problem), "error: 1 problem in jobs.yaml"]
    assert "Traceback" not in err
    assert PASSWORD not in err
    assert not (tmp_path / "MARKER").exists()


def _taskkit_command() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "taskkit"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        c
        for c in BAD
        if c.id
        in {
            "yaml_syntax_unclosed_quote",
            "python_tag",
            "missing_env_var",
            "func_module_raises_import_error",
            "bad_redis_url_scheme",
        }
    ],
    ids=str,
)
def test_bad_jobs_yaml_in_a_real_process(case: Bad, tmp_path: Path) -> None:
    path = write(tmp_path, case.text)
    env = {k: v for k, v in os.environ.items() if k not in (UNSET, "TASKKIT_DEBUG")}
    done = subprocess.run(
        [*_taskkit_command(), "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[-1] == "error: 1 problem in jobs.yaml"
    assert lines[0].startswith(_expected_line(case, path))
    assert case.message in lines[0]
    assert f"({case.hint}" in lines[0]
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr
    assert not (tmp_path / "MARKER").exists()


# -- safety: tags never run, bombs are refused ----------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:loaderapps.marker.touch [{marker}]",
        "!!python/object/new:loaderapps.marker.touch [{marker}]",
        "!!python/object/apply:loaderapps.marker.touch {args: [{marker}]}",
        "!!python/name:loaderapps.marker.touch",
        "!!python/module:loaderapps.marker",
    ],
)
@pytest.mark.parametrize("where", ["value", "top", "key", "item"])
def test_python_tags_are_refused_and_never_run(payload: str, where: str, tmp_path: Path) -> None:
    text = {
        "value": "version: 1\njobs:\n  a:\n    func: m:f\n    description: {payload}\n",
        "top": "{payload}\n",
        "key": "version: 1\n{payload} : 1\n",
        "item": "version: 1\npythonpath:\n  - a\n  - {payload}\n",
    }[where].replace("{payload}", payload)
    path = write(tmp_path, text)
    sys.path.insert(0, str(APPS))  # importable, so that running it would succeed
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert "is not allowed" in problem.message
    assert "!!python/" in problem.message
    assert not (tmp_path / "MARKER").exists()


def test_the_python_tag_payload_is_live(tmp_path: Path) -> None:
    """The control for the test above: PyYAML's unsafe loader does run the payload."""
    sys.path.insert(0, str(APPS))
    marker = tmp_path / "MARKER"
    yaml.unsafe_load(
        f"x: !!python/object/apply:loaderapps.marker.touch [{json.dumps(str(marker))}]"
    )
    assert marker.exists()


@pytest.mark.timeout(5)
@pytest.mark.parametrize("levels", [9, 30])
def test_alias_bomb_is_refused(levels: int) -> None:
    text = (
        "version: 1\na0: &a0 ["
        + ", ".join(["lol"] * 9)
        + "]\n"
        + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, levels))
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    [problem] = caught.value.problems
    assert problem.message == f"more than {MAX_ALIASES} aliases (*name) are used"


@pytest.mark.timeout(5)
def test_merge_key_bomb_is_refused_or_collapsed() -> None:
    # Each level merges the one before ten times: flattening naively is 10**n pairs.
    text = "version: 1\njobs:\n  j0: &j0 {func: m:f}\n" + "".join(
        f"  j{i}: &j{i} {{<<: [{', '.join([f'*j{i - 1}'] * 10)}]}}\n" for i in range(1, 30)
    )
    parsed = parse_config(text)
    assert parsed.config.jobs["j29"].func == "m:f"


@pytest.mark.timeout(5)
def test_self_referencing_merge_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: 1\njobs: &j\n  a: {<<: *j}\n")
    assert len(caught.value.problems) == 1


@pytest.mark.timeout(5)
def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: 1\nx: &x [*x]\n")
    assert len(caught.value.problems) == 1


def test_too_large_text_is_refused_before_parsing() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("version: 1\n# " + "é" * (MAX_FILE_BYTES // 2) + "\n")
    [problem] = caught.value.problems
    assert f"more than the {MAX_FILE_BYTES} allowed" in problem.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("version: !!int abc\n", "'abc' is not a valid whole number"),
        ("version: !!float abc\n", "'abc' is not a valid number"),
        ("version: !!bool maybe\n", "'maybe' is not a valid true or false"),
        ("version: !!timestamp soon\n", "'soon' is not a valid date or datetime"),
        ("version: 1\nx: 2026-02-30\n", "'2026-02-30' is not a valid date or datetime"),
        ("version: 1\nx: " + "9" * 5000 + "\n", "is not a valid whole number"),
        ("version: !!set {a, b}\n", "the tag '!!set' is not allowed"),
        ("version: !!binary aGk=\n", "the tag '!!binary' is not allowed"),
        ("version: 1\n? [a, b]\n: c\n", "a key must be a plain string"),
        ("version: 1\nx: 1\x00\n", "found U+0000"),
        ("version: 1\nx: \ud800\n", "not valid Unicode"),
        ("version: 1\n---\nversion: 1\n", "expected a single document"),
        ("- version: 1\n", "the document is a list"),
        ("just text\n", "the document is a string"),
    ],
)
def test_odd_yaml_is_one_clear_problem(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "jobs.yaml")
    [problem] = caught.value.problems
    assert fragment in problem.message
    assert problem.hint
    assert "\n" not in str(problem)
    assert problem.line >= 1
    assert problem.column >= 1


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_config(tmp_path / "missing.yaml")
    assert "TASKKIT_CONFIG" in caught.value.problems[0].hint
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("version: 1\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as caught:
        load_config(latin)
    assert caught.value.problems[0].hint == "save the file as UTF-8"


# -- everything reported at once ------------------------------------------------------------

MANY_MISTAKES = """\
version: 1
redis:
  url: ${UNSET_VAR}
queues:
  default: {}
  emails: {timeout: 0}
jobs:
  a:
    func: m:f
    timeout: soon
  b:
    func: m:g
    queue: email
  c:
    func: m:h
    retires: 3
schedules:
  s1:
    job: nope
    every: 1m
  s2:
    job: a
    cron: "0 3 * *"
    timezone: Mars/Olympus
""".replace("UNSET_VAR", UNSET)


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(MANY_MISTAKES, "jobs.yaml", env={})
    found = [(p.line, p.column, p.key_path) for p in caught.value.problems]
    assert found == [
        (3, 8, "redis.url"),
        (6, 21, "queues.emails.timeout"),
        (10, 14, "jobs.a.timeout"),
        (13, 12, "jobs.b.queue"),
        (16, 5, "jobs.c.retires"),
        (19, 10, "schedules.s1.job"),
        (23, 11, "schedules.s2.cron"),
        (24, 15, "schedules.s2.timezone"),
    ]
    # All of them reach the command line too, in one run.
    # Through load, the funcs that parsed are imported too: module 'm' does not exist.
    path = write(tmp_path, MANY_MISTAKES)
    code, _, err = _output_of_validate(path, capsys)
    assert code == 1
    assert err.splitlines()[-1] == "error: 11 problems in jobs.yaml"
    assert sum("module 'm' not found" in line for line in err.splitlines()) == 3


def test_every_import_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + textwrap.dedent(
            """\
            jobs:
              a:
                func: loaderapps.no_such_module:run
              b:
                func: loaderapps.jobs:no_such_function
              c:
                func: loaderapps.broken_runtime:run
              d:
                func: loaderapps.jobs:heartbeat
            schedules:
              tick:
                job: d
                every: 1m
                kwargs: {unexpected: 1}
            """
        ),
    )
    found = [(p.line, p.key_path) for p in problems_of(path)]
    assert found == [
        (5, "jobs.a.func"),
        (7, "jobs.b.func"),
        (9, "jobs.c.func"),
        (16, "schedules.tick.kwargs.unexpected"),
    ]


FOUR_KINDS = HEAD + textwrap.dedent(
    """\
    jobs:
      receipt:
        func: loaderapps.jobs:send_receipt
        timout: 30s
      clean:
        func: loaderapps.jobs:cleanup
      beat:
        func: loaderapps.jobs:hartbeat
    schedules:
      nightly:
        job: clean
        cron: "*/2 * * 13 *"
      resend:
        job: receipt
        every: 1h
        kwargs: {user_id: 1, paymentid: 2}
      tidy:
        job: clean
        every: 1d
        kwargs: {older_than_dayz: 3}
    """
)


@pytest.mark.parametrize(
    ("mistake", "line", "path", "message"),
    [
        ("unknown key", 6, "jobs.receipt.timout", "unknown key 'timout'"),
        ("func typo", 10, "jobs.beat.func", "did you mean loaderapps.jobs:heartbeat?"),
        ("bad cron", 14, "schedules.nightly.cron", "month 13 is out of range 1-12"),
        (
            "kwarg of a broken job",
            18,
            "schedules.resend.kwargs.paymentid",
            "unexpected keyword 'paymentid' (did you mean 'payment_id'?)",
        ),
        (
            "kwarg",
            22,
            "schedules.tidy.kwargs.older_than_dayz",
            "unexpected keyword 'older_than_dayz' (did you mean 'older_than_days'?)",
        ),
    ],
)
def test_structural_import_and_binding_problems_in_one_run(
    mistake: str, line: int, path: str, message: str, tmp_path: Path
) -> None:
    problems = problems_of(write(tmp_path, FOUR_KINDS))
    assert len(problems) == 5, "\n".join(map(str, problems))
    [found] = [p for p in problems if p.key_path == path]
    assert found.line == line
    assert message in str(found)


# -- what good files mean -------------------------------------------------------------------


def test_the_repository_jobs_yaml_is_valid() -> None:
    parsed = load_config(REPO / "jobs.yaml")
    cfg = parsed.config
    assert list(cfg.queues) == ["critical", "default", "emails"]
    assert cfg.effective_jobs()["send_payment_receipt"].retry == RetryConfig(
        max=3, intervals=[10, 60, 300]
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("45", 45), ('"45s"', 45), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)],
)
def test_durations_in_yaml(written: str, seconds: int) -> None:
    text = f"version: 1\njobs:\n  a:\n    func: m:f\n    timeout: {written}\n"
    assert parse_config(text).config.jobs["a"].timeout == seconds


def test_interpolation() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        redis:
          url: ${REDIS_URL:-redis://localhost:6379/0}
        app:
          factory: ${APP_MODULE}:create_app
          kwargs:
            greeting: "costs $$5, not ${PRICE:-$$7}"
            literal: $${NOT_A_VAR}
            empty: "${EMPTY:-}"
            list: ["${APP_MODULE}", "${MISSING:-fallback}", 3]
          server_name: ${HOST}.${DOMAIN:-example.com}
        """
    )
    env = {"APP_MODULE": "payments.app", "HOST": "www", "PRICE": "6"}
    cfg = parse_config(text, env=env).config
    assert cfg.redis.url.reveal() == "redis://localhost:6379/0"
    assert cfg.app is not None
    assert cfg.app.factory == "payments.app:create_app"
    assert cfg.app.kwargs == {
        "greeting": "costs $5, not 6",
        "literal": "${NOT_A_VAR}",
        "empty": "",
        "list": ["payments.app", "fallback", 3],
    }
    assert cfg.app.server_name == "www.example.com"
    # A set variable wins over the default, even when it is empty.
    env = {**env, "REDIS_URL": "redis://cache:6379/3", "DOMAIN": ""}
    cfg = parse_config(text, env=env).config
    assert cfg.redis.url.reveal() == "redis://cache:6379/3"
    assert cfg.app is not None
    assert cfg.app.server_name == "www."


def test_interpolation_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKKIT_TEST_QUEUE", "emails")
    text = "version: 1\njobs:\n  a:\n    func: m:f\n    queue: ${TASKKIT_TEST_QUEUE}\n"
    assert parse_config(text).config.jobs["a"].queue == "emails"


def test_merge_keys() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        queues:
          default: {}
          emails: {}
        jobs:
          base: &job
            func: m:base
            timeout: 30s
            retry: {max: 3, intervals: [1s]}
          a:
            <<: *job
            timeout: 1m
          b:
            <<: [{func: m:b, queue: emails}, *job]
          c:
            <<: {<<: *job, description: nested}
            func: m:c
        """
    )
    jobs = parse_config(text).config.jobs
    # Keys written in the mapping win over merged ones.
    assert (jobs["a"].func, jobs["a"].timeout) == ("m:base", 60)
    assert jobs["a"].retry == RetryConfig(max=3, intervals=[1])
    # Earlier mappings in a merge list win over later ones.
    assert (jobs["b"].func, jobs["b"].queue, jobs["b"].timeout) == ("m:b", "emails", 30)
    assert (jobs["c"].func, jobs["c"].description, jobs["c"].timeout) == ("m:c", "nested", 30)


def test_a_mistake_in_merged_values_points_at_the_anchor() -> None:
    text = "version: 1\nx-base: &base {timeout: soon}\njobs:\n  a:\n    <<: *base\n    func: m:f\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    problems = {(p.key_path, p.line, p.column) for p in caught.value.problems}
    assert ("jobs.a.timeout", 2, 25) in problems


def test_many_jobs_may_share_an_anchor() -> None:
    text = "version: 1\njobs:\n  base: &job\n    func: m:f\n    retry: {max: 3, intervals: [1s]}\n"
    text += "".join(f"  j{i}:\n    <<: *job\n    timeout: {i + 1}\n" for i in range(300))
    jobs = parse_config(text).config.jobs
    assert len(jobs) == 301
    assert jobs["j299"].timeout == 300
    assert jobs["j299"].retry == RetryConfig(max=3, intervals=[1])


def test_pythonpath_is_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    relative = os.path.relpath(APPS, folder)
    path = write(
        folder, f"version: 1\npythonpath: [{json.dumps(relative)}]\njobs:\n  a:\n    func: {JOB}\n"
    )
    registry = taskkit.load(path, cached=False)
    assert registry.jobs["a"].func.__module__ == "loaderapps.jobs"


def test_positions_of_keys_and_values() -> None:
    text = "version: 1\njobs:\n  a:\n    func: m:f\n    timeout: 30s\n"
    positions = parse_config(text).positions
    assert positions.keys[("jobs", "a", "timeout")] == (4, 4)
    assert positions.values[("jobs", "a", "timeout")] == (4, 13)
    # A path that was never written falls back to its nearest written ancestor.
    assert positions.locate(("jobs", "a", "retry", "max")) == (3, 4)


# -- the Redis password never shows -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"version: 1\nredis:\n  url: http://user:{PASSWORD}@localhost/0\n",
        f"version: 1\nredis:\n  url: user:{PASSWORD}@localhost:6379\n",
        f"version: 1\nredis:\n  url: redis://:{PASSWORD}@localhost/0\njobz: {{}}\n",
        f"version: 1\nredis:\n  url: redis://:{PASSWORD}@localhost/0\n  urll: x\n",
        f"version: 1\nredis:\n  url: redis://:{PASSWORD}@localhost/0\n  url: redis://other\n",
        f"version: 1\nredis: redis://:{PASSWORD}@localhost/0\n",
        f"version: 1\nredis:\n  url: [redis://:{PASSWORD}@localhost/0]\n",
        f"version: 1\nredis:\n  url: redis://:{PASSWORD}@localhost/0?x=${{{UNSET}}}\n",
    ],
)
def test_config_errors_never_show_the_password(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "jobs.yaml", env={})
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)
    for problem in caught.value.problems:
        assert PASSWORD not in repr(problem)


def test_a_loaded_config_never_shows_the_password() -> None:
    text = f"version: 1\nredis:\n  url: redis://user:{PASSWORD}@localhost:6379/0\n"
    parsed = parse_config(text)
    assert parsed.config.redis.url.reveal() == f"redis://user:{PASSWORD}@localhost:6379/0"
    for shown in (repr(parsed), str(parsed.config), repr(parsed.config.redis.url)):
        assert PASSWORD not in shown


@pytest.mark.timeout(20)
def test_a_job_module_that_loads_its_own_jobs_yaml_is_an_error_not_a_deadlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, HEAD + "jobs:\n  a:\n    func: loaderapps.reloads:run\n")
    monkeypatch.setenv("TASKKIT_TEST_RELOAD_CONFIG", str(path))
    for cached in (True, False):
        sys.modules.pop("loaderapps.reloads", None)
        if cached:
            code, _, err = _output_of_validate(path, capsys)
            assert code == 1
            [problem, _summary] = err.splitlines()
        else:
            [found] = problems_of(path)
            problem = str(found)
        assert problem.startswith(f"{path}:5:11: jobs.a.func: importing 'loaderapps.reloads'")
        assert "is loaded again while it is being loaded" in problem
        assert "create_app() at module level" in problem
