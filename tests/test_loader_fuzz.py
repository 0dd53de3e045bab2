"""Throw thousands of broken, odd and random documents at the loader.

Whatever the text, ``parse_config`` returns a valid config or raises :class:`ConfigError`
whose every problem has a place in the file and a one-line message; nothing else
escapes. The examples are derandomized, so a run is the same every time.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskkit.config import TaskkitConfig, check_references
from taskkit.errors import ConfigError
from taskkit.loader import parse_config

ENV = {"REDIS_URL": "redis://cache:6379/1", "X": "value", "EMPTY": ""}

VALID = """\
# yaml-language-server: $schema=./taskkit.schema.json
version: 1
redis:
  url: ${REDIS_URL:-redis://:s3cret@localhost:6379/0}
app:
  factory: payments.app:create_app
  kwargs: {config_name: production, price: "$$5"}
  server_name: payments.example.com
defaults:
  queue: default
  context: app
  timeout: 3m
  result_ttl: 1d
  failure_ttl: 7d
  retry: {max: 0}
queues:
  critical: {}
  default: &queue {timeout: 2m}
  emails: {timeout: 1m}
jobs:
  send_payment_receipt: &receipt
    func: payments.jobs:send_payment_receipt
    queue: emails
    context: request
    timeout: 30s
    retry: {max: 3, intervals: [10s, 1m, 5m]}
    description: Email the receipt for a completed payment
  resend_receipt:
    <<: *receipt
    description: 'Send it again: "quoted"'
  cleanup_sessions:
    func: payments.jobs:cleanup_sessions
  heartbeat:
    func: payments.jobs:heartbeat
    context: none
    timeout: 45
schedules:
  nightly-cleanup:
    job: cleanup_sessions
    cron: "0 3 * * *"
    timezone: Europe/Berlin
    kwargs: {older_than_days: 30}
  heartbeat:
    job: heartbeat
    every: 1h30m
    overlap: allow
  once:
    job: heartbeat
    at: 2030-12-24T18:00:00
    enabled: false
"""

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

# Pieces of text that mean something to YAML, to the loader or to the models.
TOKENS = [
    ": ", ":", "- ", "-", "  ", "    ", "\t", "\n", "\r\n", "\r", "#", "'", '"', "[", "]", "{", "}",
    ",", "? ", "|", ">", "|-\n", "&a ", "&b ", "*a", "*b", "*receipt", "*queue", "<<: *a\n",
    "<<: *queue\n", "<<: [*a, *b]\n", "!!python/object/apply:os.system ['false'] ",
    "!!python/name:os.system ", "!foo ", "!!str ", "!!int ", "!!float ", "!!bool ", "!!binary ",
    "!!set ", "!!timestamp ", "!!map ", "!!seq ", "!!null ", "%YAML 1.1\n", "---\n", "...\n",
    "${X}", "${X:-d}", "${NOPE}", "${", "}", "$$", "${1}", "~", "null", "yes", "no", "on", "off",
    "12:30", "0o17", "0x1F", "1e9", ".inf", ".nan", "-1", "0", "2026-13-01", "2026-12-24",
    "9" * 40, "\x00", "\x07", "\ufeff", "\u2028", "\x85", "\ud7ff", "é", "\U0001f600",
    "version: 1\n", "version: 2\n", "jobs:\n", "func: m:f\n", "timeout: 0\n", "cron: '* * * *'\n",
    "every: 1m\n", "timezone: Mars/Base\n", "queue: nope\n", "job: nope\n", "context: request\n",
]  # fmt: skip
KEYS = [
    "version", "redis", "url", "app", "factory", "kwargs", "server_name", "pythonpath",
    "serializer", "defaults", "queues", "jobs", "schedules", "queue", "context", "timeout",
    "result_ttl", "failure_ttl", "retry", "max", "intervals", "func", "description", "job",
    "cron", "every", "at", "timezone", "args", "enabled", "overlap", "misfire", "grace",
    "default", "emails", "a", "b", "<<", "=", "", "jobz", "timout",
]  # fmt: skip
SCALARS = [
    "1", "2", "0", "-5", "45", "45s", "10m", "2h", "1d", "1h30m", "3x", "'1h'", '"2m"', "m:f",
    "payments.jobs:heartbeat", "bad func", "app", "none", "request", "json", "pickle",
    "'0 3 * * *'", "'61 * * * *'", "UTC", "Europe/Berlin", "Nowhere/Land", "true", "false",
    "no", "~", "null", "''", "redis://localhost:6379/0", "http://u:p@h", "${X}", "${NOPE}",
    "$$", "2030-01-01T00:00:00", "2026-02-30", "12:30", "[]", "{}", "[1, 2]", "{a: 1}",
    "skip", "allow", "once", "*a", "&a x", "!!int x", "!bar y", "|\n  text", ">\n  folded",
]  # fmt: skip


def check(text: str) -> None:
    """The property: a valid config, or a ConfigError made only of well-placed problems."""
    lines = len(re.split("\r\n|[\n\r\x85\u2028\u2029]", text)) + 1
    try:
        parsed = parse_config(text, "jobs.yaml", ENV)
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file == "jobs.yaml"
            assert 1 <= problem.line <= lines, problem
            assert problem.column >= 1, problem
            assert problem.message, problem
            assert "\n" not in problem.message, problem
            assert "\n" not in problem.hint, problem  # (the key path is errors.py's to render)
            assert "Traceback" not in str(problem)
        return
    assert isinstance(parsed.config, TaskkitConfig)
    assert parsed.config.version == 1
    assert check_references(parsed.config) == []


def test_the_base_document_is_valid() -> None:
    parsed = parse_config(VALID, "jobs.yaml", ENV)
    assert parsed.config.jobs["resend_receipt"].func == "payments.jobs:send_payment_receipt"
    assert parsed.config.redis.url.reveal() == ENV["REDIS_URL"]


# -- mutations of a valid jobs.yaml ----------------------------------------------------------

index = st.integers(min_value=0, max_value=10**6)
snippet = st.one_of(
    st.sampled_from(TOKENS),
    st.text(max_size=12),
    st.text(alphabet=string.printable, max_size=12),
)
mutation = st.one_of(
    st.tuples(st.just("delete"), index, st.integers(min_value=1, max_value=40)),
    st.tuples(st.just("insert"), index, snippet),
    st.tuples(st.just("replace"), index, st.characters()),
    st.tuples(st.just("delete_line"), index, st.none()),
    st.tuples(st.just("duplicate_line"), index, st.none()),
    st.tuples(st.just("swap_lines"), index, index),
    st.tuples(st.just("indent"), index, st.integers(min_value=-4, max_value=4)),
    st.tuples(st.just("tab_indent"), index, st.none()),
    st.tuples(st.just("line_prefix"), index, st.sampled_from(TOKENS)),
)


def mutate(text: str, steps: list[tuple[str, Any, Any]]) -> str:
    for kind, at, extra in steps:
        if kind in ("delete", "insert", "replace"):
            i = at % (len(text) + 1)
            if kind == "delete":
                text = text[:i] + text[i + extra :]
            elif kind == "insert":
                text = text[:i] + extra + text[i:]
            else:
                text = text[:i] + extra + text[i + 1 :]
            continue
        lines = text.split("\n")
        n = at % len(lines)
        if kind == "delete_line":
            del lines[n]
        elif kind == "duplicate_line":
            lines.insert(n, lines[n])
        elif kind == "swap_lines":
            m = extra % len(lines)
            lines[n], lines[m] = lines[m], lines[n]
        elif kind == "indent":
            stripped = lines[n].lstrip(" ")
            lines[n] = " " * max(0, len(lines[n]) - len(stripped) + extra) + stripped
        elif kind == "tab_indent":
            lines[n] = lines[n].replace("  ", "\t", 1)
        else:
            lines[n] = extra + lines[n]
        text = "\n".join(lines)
    return text


@settings(FUZZ, max_examples=3000)
@given(st.lists(mutation, min_size=1, max_size=6))
def test_mutated_jobs_yaml(steps: list[tuple[str, Any, Any]]) -> None:
    check(mutate(VALID, steps))


# -- YAML-ish text from a small grammar ------------------------------------------------------
# Written with a seeded random.Random rather than nested strategies: drawing deep trees
# through Hypothesis costs ~10 ms an example, this costs microseconds.

DECORATIONS = ["", "", "", "", "&a ", "&b ", "!!str ", "!foo ", "!!python/none ", "!!map "]


def grammar_scalar(rnd: random.Random) -> str:
    if rnd.random() < 0.8:
        return rnd.choice(SCALARS)
    return "".join(rnd.choice(string.printable + "éü😀\x00") for _ in range(rnd.randint(0, 8)))


def grammar_key(rnd: random.Random) -> str:
    if rnd.random() < 0.85:
        return rnd.choice(KEYS)
    return "".join(
        rnd.choice(string.ascii_letters + "_-.:[]#&*!") for _ in range(rnd.randint(1, 6))
    )


def grammar_value(rnd: random.Random, indent: int, depth: int) -> str:
    """A value after 'key:' or '-': a scalar, an alias, a flow collection or a block."""
    roll = rnd.random()
    pad = " " * indent
    if depth > 3 or roll < 0.45:
        return f" {rnd.choice(DECORATIONS)}{grammar_scalar(rnd)}\n"
    if roll < 0.5:
        return f" *{rnd.choice('abc')}\n"
    if roll < 0.6:
        pairs = (f"{grammar_key(rnd)}: {grammar_scalar(rnd)}" for _ in range(rnd.randint(0, 3)))
        return " " + rnd.choice(DECORATIONS) + "{" + ", ".join(pairs) + "}\n"
    if roll < 0.65:
        return " [" + ", ".join(grammar_scalar(rnd) for _ in range(rnd.randint(0, 3))) + "]\n"
    if roll < 0.75:
        items = (
            f"{pad}-{grammar_value(rnd, indent + 2, depth + 1)}" for _ in range(rnd.randint(1, 3))
        )
        return "\n" + "".join(items)
    return "\n" + grammar_block(rnd, indent, depth + 1)


def grammar_block(rnd: random.Random, indent: int, depth: int) -> str:
    pad = " " * indent
    lines = []
    for _ in range(rnd.randint(1, 4)):
        key = grammar_key(rnd)
        if rnd.random() < 0.05:
            key = "<<"
        lines.append(f"{pad}{key}:{grammar_value(rnd, indent + 2, depth)}")
    return "".join(lines)


def grammar_document(rnd: random.Random) -> str:
    text = "version: 1\n" if rnd.random() < 0.8 else ""
    for _ in range(rnd.randint(1, 4)):
        section = rnd.choice(KEYS[:13])
        text += f"{section}:{grammar_value(rnd, 2, 0)}"
    return text


@settings(FUZZ, max_examples=2500)
@given(st.randoms(use_true_random=False))
def test_grammar_documents(rnd: random.Random) -> None:
    check(grammar_document(rnd))


# -- random data dumped as YAML ----------------------------------------------------------------

names = st.one_of(
    st.sampled_from(["a", "b", "default", "emails", "q-1", "x.y"]), st.text(max_size=6)
)
plain = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(SCALARS),
    st.text(max_size=12),
    st.datetimes(),
)
anything = st.recursive(
    plain,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
maybe = st.one_of(plain, anything)
settings_values = st.fixed_dictionaries(
    {},
    optional={
        "timeout": st.one_of(st.sampled_from(["30s", "1m", 45, 0]), maybe),
        "result_ttl": st.one_of(st.sampled_from(["1d", 0]), maybe),
        "retry": st.one_of(
            st.fixed_dictionaries(
                {"max": st.integers(min_value=-1, max_value=5)},
                optional={"intervals": st.lists(st.sampled_from(["1s", "1m", 5, "x"]), max_size=3)},
            ),
            maybe,
        ),
        "context": st.one_of(st.sampled_from(["none", "app", "request"]), maybe),
    },
)
job = st.fixed_dictionaries(
    {"func": st.one_of(st.sampled_from(["m:f", "pkg.mod:Cls.meth", "bad"]), maybe)},
    optional={"queue": st.one_of(names, maybe), "description": maybe},
).flatmap(lambda fields: settings_values.map(lambda extra: {**extra, **fields}))
schedule = st.fixed_dictionaries(
    {"job": st.one_of(names, maybe)},
    optional={
        "cron": st.one_of(st.sampled_from(["0 3 * * *", "*/5 * * * *", "61 * * * *"]), maybe),
        "every": st.one_of(st.sampled_from(["1m", 30, "0s"]), maybe),
        "at": st.one_of(st.datetimes(), maybe),
        "timezone": st.one_of(st.sampled_from(["UTC", "Europe/Berlin", "Nope/Nope"]), maybe),
        "kwargs": st.one_of(st.dictionaries(st.text(max_size=5), plain, max_size=2), maybe),
        "args": st.one_of(st.lists(plain, max_size=2), maybe),
        "enabled": st.one_of(st.booleans(), maybe),
    },
)
document = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), st.just(1), maybe)},
    optional={
        "redis": st.one_of(
            st.fixed_dictionaries({"url": st.sampled_from(["redis://h:1/0", "${X}", "ftp://x"])}),
            maybe,
        ),
        "app": st.one_of(st.fixed_dictionaries({"factory": st.sampled_from(["a:b", "ab"])}), maybe),
        "defaults": st.one_of(settings_values, maybe),
        "queues": st.one_of(st.dictionaries(names, settings_values, max_size=3), maybe),
        "jobs": st.one_of(st.dictionaries(names, job, max_size=4), maybe),
        "schedules": st.one_of(st.dictionaries(names, schedule, max_size=3), maybe),
        "serializer": st.one_of(st.sampled_from(["json", "pickle", "yaml"]), maybe),
        "pythonpath": st.one_of(st.lists(st.text(max_size=5), max_size=2), maybe),
    },
)


@settings(FUZZ, max_examples=1200)
@given(document, st.booleans(), st.booleans())
def test_random_data_dumped_as_yaml(data: dict[str, Any], flow: bool, unicode: bool) -> None:
    check(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=unicode, sort_keys=False))


@settings(FUZZ, max_examples=500)
@given(anything)
def test_any_yaml_value(data: Any) -> None:
    check(yaml.safe_dump(data))


@settings(FUZZ, max_examples=1000)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)


# -- malformed Redis URLs: no part of the password in any output ------------------------------
# Every alphanumeric run of a password starts with MARK, so that any piece of it that gets
# out is found. Well-formed URLs point at port 1 of this host: refused at once, and never
# anyone's Redis.

MARK = "Zqx"
URL_SPECIALS = "#/?@%:;&=+$,[]! ~'\"\\<>^`{}|"


def password(rnd: random.Random) -> str:
    pieces = []
    for _ in range(rnd.randint(1, 4)):
        pieces.append(MARK + "".join(rnd.choices(string.ascii_letters + string.digits, k=3)))
        pieces.append("".join(rnd.choices(URL_SPECIALS, k=rnd.randint(0, 3))))
    return "".join(pieces)


def redis_url(rnd: random.Random) -> str:
    from urllib.parse import quote

    secret = password(rnd)
    junk = "".join(rnd.choices(string.ascii_letters + string.digits + "-_.", k=rnd.randint(1, 6)))
    return rnd.choice(
        [
            f"redis://app:{secret}@127.0.0.1:1/0",  # raw specials in the password
            f"redis://:{secret}@127.0.0.1:1/{junk}",
            f"redis://app:{secret}127.0.0.1:1/0",  # the '@' forgotten
            f"redis://app:{secret}/127.0.0.1:1/0",
            f"redis://app:{secret}@127.0.0.1:{junk}/0",  # a bad port
            f"redis://{secret}@127.0.0.1:1/0",  # the ':' forgotten
            f"rediss://app:{quote(secret, safe='')}@127.0.0.1:1/{junk}",
            f"redis://app:{quote(secret, safe='')}@127.0.0.1:1/0",  # well-formed
            f"redis://127.0.0.1:1/0?password={secret}",
            f"redis://127.0.0.1:1/0?password={quote(secret, safe='')}&db={junk}",
            f"redis+sentinel://:{secret}@127.0.0.1:1/mymaster/0",
            f"redis+sentinel://:{quote(secret, safe='')}@127.0.0.1:{junk}/mymaster",
            f"unix://:{secret}@/tmp/taskkit-no-such.sock?db={junk}",
            f"redis://:{secret}",
            f"{secret}@127.0.0.1:1",
        ]
    )


def run_cli(*args: str) -> str:
    """Everything ``taskkit ARGS`` prints, in this process."""
    import contextlib
    import io

    from taskkit.cli import main

    out = io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
        contextlib.suppress(SystemExit),
    ):
        main(list(args))
    return out.getvalue()


@settings(FUZZ, max_examples=150)
@given(st.randoms(use_true_random=False), st.booleans())
def test_no_output_shows_any_part_of_a_redis_password(rnd: random.Random, by_env: bool) -> None:
    import json
    import os
    import tempfile

    from taskkit.config import SecretUrl, redact_url

    url = redis_url(rnd)
    shown = [redact_url(url), str(SecretUrl(url)), repr(SecretUrl(url))]
    written = "${TASKKIT_FUZZ_URL}" if by_env else url
    with tempfile.TemporaryDirectory() as folder:
        config = os.path.join(folder, "jobs.yaml")
        with open(config, "w", encoding="utf-8") as file:
            file.write(
                f"version: 1\nredis: {{url: {json.dumps(written)}}}\n"
                "jobs: {noop: {func: 'time:time'}}\n"
            )
        os.environ["TASKKIT_FUZZ_URL"] = url
        try:
            for command in (["validate"], ["list"], ["status"], ["enqueue", "noop"]):
                shown.append(run_cli(*command, "-c", config))
            shown.append(run_cli("failed", "list", "-c", config))
        finally:
            del os.environ["TASKKIT_FUZZ_URL"]
    for text in shown:
        assert MARK.lower() not in text.lower(), (url, text)
