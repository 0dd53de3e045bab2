"""A hostile jobs.yaml: 10,500 generated documents, each fails fast with a ConfigError
(or loads as written), and nothing in them is ever executed.

Each document is a small valid jobs.yaml with hostile pieces put in at random places:
Python tags whose payload would create a marker file, alias bombs and merge-key bombs,
deep nesting, huge files, odd tags and characters, and unquoted scalars that YAML
reads as something else (``no``, ``0755``, ``12:30``, ...) in string fields. The one-case
versions of these, with exact messages and positions, are in tests/test_loader.py
(``test_python_tags_are_refused_and_never_run``, ``test_alias_bomb_is_refused``,
``test_too_large_text_is_refused_before_parsing``, the ``unquoted_*`` cases of
``test_bad_jobs_yaml``); the fuzzing of ordinary mistakes is in tests/test_loader_fuzz.py.
Derandomized: every run checks the same documents.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from worker_support import TESTS

from taskkit.errors import ConfigError
from taskkit.loader import MAX_DEPTH, MAX_FILE_BYTES, parse_config

pytestmark = pytest.mark.slow

EXAMPLES = 10_500
MARKER = Path(tempfile.gettempdir()) / "taskkit-hostile-config-marker"
ENV = {"REDIS_URL": "redis://cache:6379/1"}

BASE = """\
version: 1
redis: {url: "${REDIS_URL}"}
app:
  factory: payments.app:create_app
  server_name: SERVER
pythonpath: [PATH]
queues:
  default: {}
jobs:
  receipt:
    func: payments.jobs:send_payment_receipt
    description: DESCRIPTION
schedules:
  nightly:
    job: receipt
    cron: "0 3 * * *"
    description: SCHEDULE
"""
# String fields and where a test finds them in the loaded config.
FIELDS: dict[str, Callable[[Any], Any]] = {
    "SERVER": lambda c: c.app.server_name,
    "PATH": lambda c: c.pythonpath[0],
    "DESCRIPTION": lambda c: c.jobs["receipt"].description,
    "SCHEDULE": lambda c: c.schedules["nightly"].description,
}
SAFE = {"SERVER": "payments.example.com", "PATH": "src", "DESCRIPTION": "d", "SCHEDULE": "s"}

TRAPS = [
    "no", "yes", "on", "off", "No", "YES", "Off", "true", "False",
    "0755", "0o17", "0x1F", "0b101", "1_000", "+12", "-0", "12:30", "1:02:03", "190:20:30",
    "3.14", ".inf", "-.Inf", ".nan", "1e3", "6.02e23", "2026-01-01", "2026-01-01 10:00:00",
    "2026-01-01T10:00:00Z",
]  # fmt: skip
PAYLOADS = [
    "!!python/object/apply:loaderapps.marker.touch [MARK]",
    "!!python/object/new:loaderapps.marker.touch [MARK]",
    "!!python/object/apply:loaderapps.marker.touch {args: [MARK]}",
    "!!python/name:loaderapps.marker.touch",
    "!!python/module:loaderapps.marker",
    "!!python/object:loaderapps.marker.Touch {path: MARK}",
]
ODD = ["!!binary aGk=", "!!set {a, b}", "!!timestamp soon", "!custom x", "!!omap [a: 1]",
       "!<tag:yaml.org,2002:python/none> ''", "\x07", "\x00", "\ufeff", "\u2028", "&a *a",
       '"\\x00"', "'\n'", "|\n  text", "? complex\n: key"]  # fmt: skip


def fill(values: dict[str, str]) -> str:
    text = BASE
    for name, value in values.items():
        text = text.replace(name, value, 1)
    return text


def with_one(rnd: random.Random, value: str) -> tuple[str, str]:
    """The base document with ``value`` in one string field; (text, field)."""
    field = rnd.choice(list(FIELDS))
    return fill({**SAFE, field: value}), field


def trap(rnd: random.Random) -> tuple[str, str, str]:
    value = rnd.choice(TRAPS)
    text, field = with_one(rnd, value)
    return text, field, value


def python_tag(rnd: random.Random) -> str:
    payload = rnd.choice(PAYLOADS).replace("MARK", json.dumps(str(MARKER)))
    where = rnd.randrange(4)
    if where == 0:
        return with_one(rnd, payload)[0]
    if where == 1:
        return fill(SAFE) + f"extra: {payload}\n"
    if where == 2:
        return fill(SAFE).replace("pythonpath: [src]", f"pythonpath:\n  - src\n  - {payload}")
    return f"{payload}\n"


def alias_bomb(rnd: random.Random) -> str:
    width, levels = rnd.randint(2, 12), rnd.randint(2, 14)
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    if rnd.random() < 0.5:  # the bomb under a key the models read
        lines = ["jobs:", *(f"  x{i}: {line.split(': ', 1)[1]}" for i, line in enumerate(lines))]
    return "version: 1\n" + "\n".join(lines) + "\n"


def merge_bomb(rnd: random.Random) -> str:
    width, levels = rnd.randint(2, 12), rnd.randint(2, 30)
    jobs = "".join(
        f"  j{i}: &j{i} {{<<: [{', '.join([f'*j{i - 1}'] * width)}]}}\n" for i in range(1, levels)
    )
    return "version: 1\njobs:\n  j0: &j0 {func: m:f}\n" + jobs


def deep(rnd: random.Random) -> str:
    depth = rnd.randint(MAX_DEPTH - 10, MAX_DEPTH * 4)
    if rnd.random() < 0.5:
        return f"version: 1\nx: {'[' * depth}1{']' * depth}\n"
    return (
        "version: 1\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"
    )


def huge(rnd: random.Random) -> str:
    size = rnd.choice([MAX_FILE_BYTES + rnd.randint(1, 1000), rnd.randint(10_000, 1_000_000)])
    filler = rnd.choice(["a", "é", "#", " "])
    text = fill({**SAFE, "DESCRIPTION": "long"})
    return text + "# " + filler * (size // len(filler.encode()) - len(text)) + "\n"


def odd(rnd: random.Random) -> str:
    return with_one(rnd, rnd.choice(ODD))[0]


def random_junk(rnd: random.Random) -> str:
    """Pieces of all of the above, spliced into the base document at random."""
    text = fill(SAFE)
    for _ in range(rnd.randint(1, 4)):
        piece = rnd.choice([*ODD, *TRAPS, "*a", "&a", "<<: *a", "- ", ": ", "{", "[", "]", "}"])
        at = rnd.randrange(len(text) + 1)
        text = text[:at] + piece + text[at:]
    return text


KINDS: list[Callable[[random.Random], str]] = [
    python_tag, alias_bomb, merge_bomb, deep, odd, random_junk
]  # fmt: skip


def parse(text: str) -> Any:
    """The loaded config, or None after a ConfigError whose every problem is well placed."""
    try:
        return parse_config(text, "jobs.yaml", ENV).config
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file == "jobs.yaml"
            assert problem.line >= 1 and problem.column >= 1, problem
            assert problem.message and "\n" not in problem.message, problem
        return None


@pytest.fixture(scope="module", autouse=True)
def _payloads_would_run() -> Any:
    """Make the payloads' module importable, so that running one would succeed."""
    MARKER.unlink(missing_ok=True)
    sys.path.insert(0, str(TESTS / "apps"))
    imported_before = "loaderapps.marker" in sys.modules
    yield
    sys.path.remove(str(TESTS / "apps"))
    assert not MARKER.exists(), "a payload ran"
    assert imported_before or "loaderapps.marker" not in sys.modules, "a payload was imported"


@pytest.mark.timeout(900)  # 10,500 documents: 77 s beside two CPU hogs
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.randoms(use_true_random=False))
def test_hostile_documents_fail_fast_and_run_nothing(rnd: random.Random) -> None:
    """Fast in CPU time of this process: a bomb burns it, a busy machine does not."""
    roll = rnd.random()
    started = time.process_time()
    if roll < 0.35:
        text, field, value = trap(rnd)
        config = parse(text)
        # Loaded only as written: never a bool, number or date YAML made of it.
        assert config is None or FIELDS[field](config) == value
    elif roll < 0.352:
        text = huge(rnd)
        config = parse(text)
        assert (config is None) == (len(text.encode()) > MAX_FILE_BYTES)
    else:
        parse(rnd.choice(KINDS)(rnd))
    took = time.process_time() - started
    assert took < (3.0 if roll < 0.352 else 1.0), f"{took:.2f}s of CPU"
    assert not MARKER.exists(), "a payload ran"


def test_the_base_document_and_its_string_fields_load() -> None:
    config = parse(fill(SAFE))
    assert config is not None
    assert {name: read(config) for name, read in FIELDS.items()} == SAFE
    assert parse(with_one(random.Random(1), "'no'")[0]) is not None, "a quoted no is fine"
