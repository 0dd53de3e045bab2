"""`taskkit validate`, `taskkit list` and `taskkit schema`: the commands that need no Redis."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from taskkit.cli import cli, main
from taskkit.schema import json_schema

REPO = Path(__file__).parent.parent
APPS = Path(__file__).parent / "apps"
PASSWORD = "hunter2-s3cr3t"

GOOD = f"""\
version: 1
pythonpath: [{json.dumps(str(APPS))}]
redis:
  url: redis://user:{PASSWORD}@localhost:6379/0
defaults:
  timeout: 3m
  retry: {{max: 1}}
queues:
  critical: {{timeout: 10s}}
  default: {{}}
  emails: {{timeout: 1m, retry: {{max: 3, intervals: [10s, 1m]}}}}
jobs:
  send_receipt:
    func: loaderapps.jobs:send_receipt
    queue: emails
  cleanup:
    func: loaderapps.jobs:cleanup
    timeout: 1h30m
    retry: {{max: 0}}
  heartbeat:
    func: loaderapps.jobs:heartbeat
    queue: critical
schedules:
  nightly-cleanup:
    job: cleanup
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    kwargs: {{older_than_days: 30}}
  tick:
    job: heartbeat
    every: 1m
  long-ago:
    job: heartbeat
    at: 2001-01-01T00:00:00
"""


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in [m for m in sys.modules if m == "loaderapps" or m.startswith("loaderapps.")]:
        del sys.modules[name]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(GOOD, encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str, str]:
    """Run the console entry point in process: (exit code, stdout, stderr)."""
    runner = CliRunner()
    code = 0
    with runner.isolation() as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exited:
            code = int(exited.code or 0)
    return code, out.getvalue().decode(), err.getvalue().decode()


def _taskkit_command() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "taskkit"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from taskkit.cli import main; main(sys.argv[1:])"]


# -- validate ---------------------------------------------------------------------------------


def test_validate_a_good_file(good: Path) -> None:
    code, out, err = run("validate", "-c", str(good))
    assert (code, err) == (0, "")
    assert out == f"{good}: OK (3 jobs, 3 queues, 3 schedules)\n"
    assert PASSWORD not in out


def test_validate_with_click_runner(good: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "--config", str(good)])
    assert result.exit_code == 0, result.output
    assert "OK (3 jobs, 3 queues, 3 schedules)" in result.output


def test_validate_reads_taskkit_config(good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKKIT_CONFIG", str(good))
    code, out, _ = run("validate")
    assert code == 0
    assert out.startswith(f"{good}: OK")


def test_without_c_or_taskkit_config_the_working_directorys_jobs_yaml_is_used(
    good: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKKIT_CONFIG", raising=False)
    monkeypatch.chdir(good.parent)
    for command in ("validate", "list"):
        code, _, err = run(command)
        assert (code, err) == (0, ""), command
    assert run("validate")[1] == "jobs.yaml: OK (3 jobs, 3 queues, 3 schedules)\n"
    monkeypatch.chdir(good.parent.parent)  # no jobs.yaml here
    code, _, err = run("validate")
    assert code == 1
    assert err.startswith(f"error: {good.parent.parent / 'jobs.yaml'}: no such file (")


@pytest.mark.parametrize("command", ["validate", "list", "schema"])
def test_a_usage_error_exits_2(command: str, good: Path) -> None:
    code, out, err = run(command, "--no-such-option")
    assert code == 2
    assert out == ""
    assert "No such option '--no-such-option'" in err and "Traceback" not in err


def test_validate_a_missing_file(tmp_path: Path) -> None:
    code, out, err = run("validate", "-c", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"error: {tmp_path / 'nope.yaml'}: no such file (create it (see docs/jobs-yaml.md), "
        "or point -c/--config or TASKKIT_CONFIG at yours)",
    ]


def test_a_relative_config_is_read_from_the_working_directory_and_shown_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("validate", "-c", "conf/jobs.yaml")
    assert (code, err) == (
        1,
        f"error: {tmp_path / 'conf' / 'jobs.yaml'}: no such file (create "
        "it (see docs/jobs-yaml.md), or point -c/--config or TASKKIT_CONFIG at yours)\n",
    )


def _special_paths(tmp: Path) -> dict[str, tuple[Path, str]]:
    import os

    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)  # no writer: opening it for reading would wait for ever
    loop = tmp / "loop.yaml"
    loop.symlink_to(tmp / "loop2.yaml")
    (tmp / "loop2.yaml").symlink_to(loop)
    return {
        "dev-zero": (Path("/dev/zero"), "is a character device, not a file"),
        "fifo": (fifo, "is a FIFO (named pipe), not a file"),
        "symlink loop": (loop, "cannot be read: a symbolic link on the path points back at itself"),
        "directory via TASKKIT_CONFIG": (tmp, "is a directory, not a file"),
    }


@pytest.mark.parametrize(
    "kind", ["dev-zero", "fifo", "symlink loop", "directory via TASKKIT_CONFIG"]
)
def test_a_path_that_is_no_regular_file_is_one_line_at_once(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: /dev/zero was read until memory ran out, a FIFO hung, a loop was a bug report."""
    path, message = _special_paths(tmp_path)[kind]
    monkeypatch.setenv("TASKKIT_CONFIG", str(path))
    done = subprocess.run(
        [*_taskkit_command(), "validate"], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {path}: {message} (")


def test_a_file_larger_than_the_bound_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    from taskkit.loader import MAX_FILE_BYTES

    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    code, _, err = run("validate", "-c", str(big))
    assert code == 1
    assert err.startswith(f"error: {big}: the file is {MAX_FILE_BYTES + 1} bytes, more than")


# -- .env and .flaskenv ---------------------------------------------------------------------

ENV_JOBS = """version: 1
redis: {url: "redis://h-${A:-unset}-${B:-unset}-${C:-unset}:6379/0"}
jobs: {j: {func: "json:loads"}}
"""


@pytest.mark.parametrize(
    ("files", "environment", "host"),
    [
        ({".env": "A=dotenv\nB=dotenv\n"}, {}, "h-dotenv-dotenv-unset"),
        ({".flaskenv": "A=flaskenv\nC=flaskenv\n"}, {}, "h-flaskenv-unset-flaskenv"),
        (  # .env wins over .flaskenv, as with flask
            {".env": "A=dotenv\nB=dotenv\n", ".flaskenv": "A=flaskenv\nC=flaskenv\n"},
            {},
            "h-dotenv-dotenv-flaskenv",
        ),
        (  # what the environment sets wins over both
            {".env": "A=dotenv\nB=dotenv\n", ".flaskenv": "A=flaskenv\nC=flaskenv\n"},
            {"B": "environ"},
            "h-dotenv-environ-flaskenv",
        ),
        (  # turned off
            {".env": "A=dotenv\n", ".flaskenv": "C=flaskenv\n"},
            {"TASKKIT_SKIP_DOTENV": "1"},
            "h-unset-unset-unset",
        ),
    ],
)
def test_the_taskkit_command_reads_env_files_as_flask_does(
    tmp_path: Path, files: dict[str, str], environment: dict[str, str], host: str
) -> None:
    import os

    project = tmp_path / "project"
    (project / "deploy").mkdir(parents=True)  # run from below: the nearest files are found
    for name, text in files.items():
        (project / name).write_text(text, encoding="utf-8")
    (project / "deploy" / "jobs.yaml").write_text(ENV_JOBS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("A", "B", "C", "TASKKIT_SKIP_DOTENV")}
    done = subprocess.run(
        [*_taskkit_command(), "list"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=project / "deploy",
        env={**env, **environment},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"redis: redis://{host}:6379/0" in lines
    read = [str(project / name) for name in (".flaskenv", ".env") if name in files]
    if "TASKKIT_SKIP_DOTENV" in environment:
        assert lines[-1] == "env files: none (TASKKIT_SKIP_DOTENV is set)"
    else:
        assert lines[-1] == f"env files: {', '.join(read)}"


@pytest.mark.slow
def test_validate_the_repository_jobs_yaml_in_a_real_process() -> None:
    done = subprocess.run(
        [*_taskkit_command(), "validate", "-c", "jobs.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"jobs\.yaml: OK \(\d+ jobs, \d+ queues, \d+ schedules\)\n", done.stdout)


@pytest.mark.slow
def test_a_broken_file_in_a_real_process_shows_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(GOOD.replace("timeout: 1h30m", "timeout: 1h30"), encoding="utf-8")
    done = subprocess.run(
        [*_taskkit_command(), "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{path}:18:14: jobs.cleanup.timeout: '1h30' is not a duration (write seconds such as "
        "45, or a string like 45s, 10m, 2h, 1d, 1h30m)",
        "error: 1 problem in jobs.yaml",
    ]


# -- list ---------------------------------------------------------------------------------------


def test_list_shows_effective_settings(good: Path) -> None:
    code, out, err = run("list", "-c", str(good))
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()]
    assert ["send_receipt", "emails", "none", "1m", "3x", "(10s,", "1m,", "1m:", "the", "last",
            "wait", "repeats)", "-", "loaderapps.jobs:send_receipt"] in rows  # fmt: skip
    assert ["cleanup", "default", "none", "1h30m", "no", "-", "loaderapps.jobs:cleanup"] in rows
    assert ["heartbeat", "critical", "none", "10s", "1x", "(at", "once)", "-",
            "loaderapps.jobs:heartbeat"] in rows  # fmt: skip
    queues = out.split("QUEUES (priority order)\n")[1].split("\n\n")[0].splitlines()
    assert [q.split() for q in queues] == [
        ["name", "jobs"],
        ["critical", "1"],
        ["default", "1"],
        ["emails", "1"],
    ]
    schedules = {
        row[0]: row for row in rows if row and row[0] in {"nightly-cleanup", "tick", "long-ago"}
    }
    assert schedules["nightly-cleanup"][:7] == [
        "nightly-cleanup",
        "cleanup",
        "cron",
        "0",
        "3",
        "*",
        "*",
    ]
    assert "Europe/Berlin" in schedules["nightly-cleanup"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT03:00:00\+0[12]:00", schedules["nightly-cleanup"][-1])
    assert schedules["tick"][2:4] == ["every", "1m"]
    assert schedules["long-ago"][-1] == "-"


def test_list_and_validate_never_show_the_password(good: Path) -> None:
    _, listed, _ = run("list", "-c", str(good))
    _, validated, _ = run("validate", "-c", str(good))
    assert "redis: redis://***@localhost:6379/0" in listed.splitlines()
    assert PASSWORD not in listed
    assert PASSWORD not in validated


def test_errors_never_show_the_password(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        f"version: 1\nredis:\n  url: http://user:{PASSWORD}@localhost:6379/0\n  urll: x\n",
        encoding="utf-8",
    )
    for command in ("validate", "list"):
        code, out, err = run(command, "-c", str(path))
        assert code == 1
        assert "is not a Redis URL" in err
        assert PASSWORD not in out + err


def test_list_of_a_broken_file_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("version: 1\njobz: {}\n", encoding="utf-8")
    code, out, err = run("list", "-c", str(path))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}:2:1: jobz: unknown key 'jobz' (did you mean 'jobs'?)",
        "error: 1 problem in jobs.yaml",
    ]


# -- schema -------------------------------------------------------------------------------------


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (REPO / "taskkit.schema.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json_schema(), (
        "taskkit.schema.json is stale: run `taskkit schema -o taskkit.schema.json`"
    )
    code, out, _ = run("schema")
    assert code == 0
    assert out == committed


def test_schema_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    code, out, _ = run("schema", "-o", str(target))
    assert (code, out) == (0, f"wrote {target}\n")
    assert json.loads(target.read_text(encoding="utf-8")) == json_schema()


def test_schema_to_a_folder_that_does_not_exist_is_one_error_line(tmp_path: Path) -> None:
    target = tmp_path / "no-such-folder" / "schema.json"
    code, out, err = run("schema", "-o", str(target))
    assert (code, out) == (1, "")
    assert err == (
        f"error: cannot write {target}: No such file or directory"
        " (check that the folder exists and is writable)\n"
    )


def test_the_example_jobs_yaml_names_the_schema_for_editors() -> None:
    first_line = (REPO / "jobs.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=./taskkit.schema.json"
    assert (REPO / "taskkit.schema.json").is_file()


def test_schema_patterns_accept_what_the_loader_accepts() -> None:
    """Editors must not flag ${VAR} URLs or durations the loader takes (the repo's jobs.yaml)."""
    defs = json_schema()["$defs"]
    url = defs["RedisConfig"]["properties"]["url"]["pattern"]
    duration = next(
        option["pattern"]
        for option in defs["JobConfig"]["properties"]["timeout"]["anyOf"][0]["anyOf"]
        if "pattern" in option
    )
    for good_url in (
        "redis://localhost:6379/0",
        "unix:///run/redis.sock",
        "${REDIS_URL:-redis://x}",
    ):
        assert re.search(url, good_url), good_url
    assert not re.search(url, "http://localhost")
    for good_duration in ("45", "45s", "3m", "1h30m", "1h 30m", "${TIMEOUT:-3m}"):
        assert re.search(duration, good_duration), good_duration
    assert not re.search(duration, "soon")


def test_the_repository_jobs_yaml_matches_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = yaml.safe_load((REPO / "jobs.yaml").read_text(encoding="utf-8"))
    schema = json.loads((REPO / "taskkit.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document, "jobz": {}}, schema)


def test_a_package_next_to_jobs_yaml_imports_from_any_directory(tmp_path: Path) -> None:
    """The ``taskkit`` script's sys.path has no working directory: jobs.yaml's own folder
    is put there, so a project's package validates from anywhere without ``pythonpath:``."""
    project = tmp_path / "project"
    (project / "tk_nextdoor").mkdir(parents=True)
    (project / "tk_nextdoor" / "__init__.py").write_text("def work() -> int:\n    return 1\n")
    (project / "jobs.yaml").write_text(
        "version: 1\njobs:\n  work: {func: 'tk_nextdoor:work', context: none}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = Path(sys.executable).parent / "taskkit"
    done = subprocess.run(
        [str(script), "validate", "-c", str(project / "jobs.yaml")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout


# -- smaller messages ---------------------------------------------------------------------


def test_the_implicit_default_queue_says_where_its_name_comes_from(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "version: 1\nqueues:\n  emails: {}\njobs:\n  j: {func: 'json:loads'}\n", encoding="utf-8"
    )
    code, _, err = run("validate", "-c", str(path))
    assert code == 1
    assert err.splitlines()[0] == (
        f"{path}:3:3: queues: no queue named 'default' "
        "(declare it under queues or set defaults.queue)"
    )


@pytest.mark.parametrize(
    ("retry", "shown"),
    [
        ("{max: 3, intervals: [10s, 1m]}", "3x (10s, 1m, 1m: the last wait repeats)"),
        ("{max: 2, intervals: [30s]}", "2x (30s, 30s: the last wait repeats)"),
        ("{max: 1, intervals: [10s, 1m]}", "1x (10s; 1 more never used)"),
        ("{max: 2, intervals: [10s, 1m]}", "2x (10s, 1m)"),
        ("{max: 2}", "2x (at once)"),
    ],
)
def test_list_explains_a_retry_max_that_does_not_match_its_intervals(
    tmp_path: Path, retry: str, shown: str
) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        f"version: 1\njobs:\n  j: {{func: 'json:loads', retry: {retry}}}\n", encoding="utf-8"
    )
    code, out, err = run("list", "-c", str(path))
    assert (code, err) == (0, "")
    assert f" {shown} " in out


def test_a_usage_error_is_written_in_the_one_error_style(good: Path) -> None:
    code, out, err = run("enqueue", "-c", str(good))
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == "error: Missing argument 'NAME'."
    assert "Error:" not in err
