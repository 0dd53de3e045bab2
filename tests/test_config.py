"""The jobs.yaml models on plain dictionaries: durations, inheritance, references, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from taskkit.config import (
    JobConfig,
    RetryConfig,
    SecretUrl,
    TaskkitConfig,
    check_references,
    format_duration,
    parse_duration,
    redact_url,
)

PASSWORD = "hunter2-s3cr3t"


def config(**sections: Any) -> TaskkitConfig:
    return TaskkitConfig.model_validate({"version": 1, **sections})


# -- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        (45, 45),
        ("45", 45),
        ("45s", 45),
        ("10m", 600),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        (" 2m ", 120),
        ("1h 30m", 5400),
        (90.0, 90),
        (0, 0),
    ],
)
def test_parse_duration(written: Any, seconds: int) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize(
    "written", [True, False, None, "", "3x", "1.5h", "m", "-5", "5 m s", [], 1.5]
)
def test_parse_duration_refuses(written: Any) -> None:
    with pytest.raises(ValueError, match=r"not a duration|a duration is"):
        parse_duration(written)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1s"), (45, "45s"), (60, "1m"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (0, "0")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(st.integers(min_value=0, max_value=10**10))
def test_duration_round_trip(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert parse_duration(seconds) == seconds
    # The spelling is canonical: formatting what was parsed gives it back.
    assert format_duration(parse_duration(text)) == text


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.sampled_from("smhdw")),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", " "]),
)
def test_duration_parts_add_up(parts: list[tuple[int, str]], separator: str) -> None:
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = separator.join(f"{count}{letter}" for count, letter in parts)
    assert parse_duration(text) == sum(count * unit[letter] for count, letter in parts)


@pytest.mark.parametrize("field", ["timeout"])
@pytest.mark.parametrize("value", [0, -1, "0s"])
def test_timeout_must_be_positive(field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match="must be more than zero seconds"):
        JobConfig.model_validate({"func": "m:f", field: value})


@pytest.mark.parametrize("field", ["result_ttl", "failure_ttl"])
def test_ttls_may_be_zero_but_not_negative(field: str) -> None:
    assert getattr(JobConfig.model_validate({"func": "m:f", field: 0}), field) == 0
    with pytest.raises(ValidationError, match="must not be negative"):
        JobConfig.model_validate({"func": "m:f", field: -1})


def test_retry_intervals_are_durations() -> None:
    retry = RetryConfig.model_validate({"max": 3, "intervals": ["10s", "1m", 300]})
    assert retry.intervals == [10, 60, 300]


# -- effective settings: defaults, then queue, then job ---------------------------------

SETTINGS = {
    # field: (value in defaults, value in queue, value in job, expected for each layer)
    "timeout": ("3m", "2m", "30s", (180, 120, 30)),
    "result_ttl": ("1d", "2h", 0, (86400, 7200, 0)),
    "failure_ttl": ("7d", "1d", "1h", (604800, 86400, 3600)),
    "retry": (
        {"max": 1},
        {"max": 2, "intervals": ["1s"]},
        {"max": 3, "intervals": ["10s", "1m"]},
        (
            RetryConfig(max=1),
            RetryConfig(max=2, intervals=[1]),
            RetryConfig(max=3, intervals=[10, 60]),
        ),
    ),
    "context": ("none", "request", "app", ("none", "request", "app")),
}
BUILTIN = {
    "timeout": 180,
    "result_ttl": 86400,
    "failure_ttl": 7 * 86400,
    "retry": RetryConfig(),
    "context": "app",  # the config has an app: section
}


@pytest.mark.parametrize("field", sorted(SETTINGS))
@pytest.mark.parametrize("layers", ["", "d", "q", "j", "dq", "dj", "qj", "dqj"])
def test_effective_settings_inherit(field: str, layers: str) -> None:
    in_defaults, in_queue, in_job, (from_defaults, from_queue, from_job) = SETTINGS[field]
    defaults: dict[str, Any] = {"queue": "work"}
    queue: dict[str, Any] = {}
    job: dict[str, Any] = {"func": "m:f"}
    if "d" in layers:
        defaults[field] = in_defaults
    if "q" in layers:
        queue[field] = in_queue
    if "j" in layers:
        job[field] = in_job
    cfg = config(
        app={"factory": "app:create"},
        defaults=defaults,
        queues={"work": queue},
        jobs={"a": job},
    )
    expected = BUILTIN[field]
    for layer, value in (("d", from_defaults), ("q", from_queue), ("j", from_job)):
        if layer in layers:
            expected = value
    effective = cfg.effective_jobs()["a"]
    assert getattr(effective, field) == expected
    assert effective.queue == "work"


def test_queue_comes_from_defaults_unless_the_job_names_one() -> None:
    cfg = config(
        defaults={"queue": "low"},
        queues={"high": {"timeout": 5}, "low": {"timeout": 50}},
        jobs={"a": {"func": "m:f"}, "b": {"func": "m:f", "queue": "high"}},
    )
    jobs = cfg.effective_jobs()
    assert (jobs["a"].queue, jobs["a"].timeout) == ("low", 50)
    assert (jobs["b"].queue, jobs["b"].timeout) == ("high", 5)


def test_context_defaults_to_none_without_an_app() -> None:
    cfg = config(jobs={"a": {"func": "m:f"}})
    assert cfg.effective_jobs()["a"].context == "none"


def test_queue_names_keep_declared_priority_order() -> None:
    cfg = config(
        queues={"critical": {}, "default": {}, "emails": {}},
        jobs={"a": {"func": "m:f", "queue": "emails"}, "b": {"func": "m:f"}},
    )
    assert cfg.queue_names == ["critical", "default", "emails"]
    assert config(jobs={"a": {"func": "m:f", "queue": "x"}}).queue_names == ["x"]


# -- cross references ---------------------------------------------------------------------


def test_check_references_finds_each_broken_reference() -> None:
    cfg = config(
        queues={"default": {}, "emails": {}},
        jobs={"a": {"func": "m:f", "queue": "email"}, "b": {"func": "m:f", "context": "app"}},
        schedules={
            "s1": {"job": "c", "every": 60},
            "s2": {"job": "a", "cron": "0 25 * * *", "timezone": "Mars/Olympus"},
        },
    )
    found = {(p.path, p.hint) for p in check_references(cfg)}
    assert found == {
        (("jobs", "a", "queue"), "did you mean 'emails'?"),
        (("jobs", "b", "context"), "add an app: section with a factory, or set context: none"),
        (("schedules", "s1", "job"), "declare it under jobs:"),
        (
            ("schedules", "s2", "cron"),
            "fix that field; the fields are minute hour day-of-month month day-of-week, "
            "e.g. '0 3 * * *'",
        ),
        (
            ("schedules", "s2", "timezone"),
            "use an IANA name such as UTC, Europe/Berlin or America/New_York",
        ),
    }


def test_check_references_accepts_a_consistent_config() -> None:
    cfg = config(
        app={"factory": "app:create"},
        queues={"default": {}},
        jobs={"a": {"func": "m:f"}},
        schedules={"s": {"job": "a", "cron": "0 3 * * *", "timezone": "Europe/Berlin"}},
    )
    assert check_references(cfg) == []


@pytest.mark.parametrize(
    "forms", [{}, {"cron": "* * * * *", "every": 60}, {"every": 60, "at": "2030-01-01T00:00:00"}]
)
def test_a_schedule_has_exactly_one_form(forms: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of cron, every, at"):
        config(jobs={"a": {"func": "m:f"}}, schedules={"s": {"job": "a", **forms}})


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("*/2 * * 13 *", "month 13 is out of range 1-12"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day of month 0 is out of range 1-31"),
        ("0 0 32 * *", "day of month 32 is out of range 1-31"),
        ("0 0 * * 8", "weekday 8 is out of range 0-7"),
        ("0 0 * smarch *", "month 'smarch' is not a number or a name"),
        ("*/0 * * * *", "minute step '0' is not a whole number of 1 or more"),
        ("0 1-25 * * *", "hour 25 is out of range 0-23"),
        ("0 0 * 1-13/2 *", "month 13 is out of range 1-12"),
        ("1,,2 * * * *", "minute has an empty item"),
        ("0 3 * *", "'0 3 * *' has 4 fields, not 5"),
        ("0 0 30 2 *", "'0 0 30 2 *' can never fire: February has no day 30"),
        ("0 0 31 4,6,9,11 *", "can never fire: April, June, September, November have no day 31"),
    ],
)
def test_a_bad_cron_names_the_field_and_the_value(cron: str, message: str) -> None:
    cfg = config(jobs={"a": {"func": "m:f"}}, schedules={"s": {"job": "a", "cron": cron}})
    [problem] = check_references(cfg)
    assert problem.path == ("schedules", "s", "cron")
    assert message in problem.message
    assert problem.hint


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 30 2 mon", "0 0 L 2 *", "0 0 31 1-3 *"])
def test_a_cron_that_fires_some_year_is_valid(cron: str) -> None:
    cfg = config(jobs={"a": {"func": "m:f"}}, schedules={"s": {"job": "a", "cron": cron}})
    assert check_references(cfg) == []


# -- secrets --------------------------------------------------------------------------------

URLS_WITH_PASSWORD = [
    f"redis://:{PASSWORD}@localhost:6379/0",
    f"redis://user:{PASSWORD}@localhost:6379/0",
    f"rediss://user:{PASSWORD}@cache.example.com:6380/1",
    f"redis+sentinel://:{PASSWORD}@h1:26379,h2:26379/mymaster",
    f"redis://localhost:6379/0?password={PASSWORD}",
    f"unix:///run/redis.sock?db=0&password={PASSWORD}",
    # Written by hand, wrongly: an unescaped '/', '?' or '#' in the password, no scheme.
    f"redis://user:ab/{PASSWORD}@localhost:6379",
    f"redis://:ab?{PASSWORD}@localhost",
    f"redis://:ab#{PASSWORD}@localhost",
    f"user:{PASSWORD}@localhost:6379",
    f"redis//:{PASSWORD}@localhost",
    f"http://:{PASSWORD}@localhost",
]


@pytest.mark.parametrize("url", URLS_WITH_PASSWORD)
def test_redact_url_hides_the_password(url: str) -> None:
    shown = redact_url(url)
    assert PASSWORD not in shown
    assert "***" in shown


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "unix:///run/redis.sock"])
def test_redact_url_leaves_urls_without_password_alone(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user@host:1/2", "redis://***@host:1/2"),  # the user name may be a password
        ("redis://user:pw@host:1/2", "redis://***@host:1/2"),
        ("redis://:pw@host:1/2", "redis://:***@host:1/2"),
        ("redis://:pw@host:1/2?ssl_password=x", "redis://:***@host:1/2?ssl_password=***"),
        ("redis://:pw#x@host:1/2", "redis://***"),  # where the password ends is unclear
        ("redis://user:pwhost:1/2", "redis://***"),  # a password taken for the port
        ("redis://user:pw/host:1/2", "redis://***"),
    ],
)
def test_redact_url_shows_no_part_of_the_user_info(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_secret_url_never_shows_the_password() -> None:
    url = f"redis://:{PASSWORD}@localhost:6379/0"
    secret = SecretUrl(url)
    assert secret.reveal() == url
    for shown in (str(secret), repr(secret), f"{secret}", format(secret, ""), secret.upper()):
        assert PASSWORD.upper() not in shown.upper()


def test_config_repr_and_dump_never_show_the_password() -> None:
    cfg = config(redis={"url": f"redis://user:{PASSWORD}@localhost:6379/0"})
    assert cfg.redis.url.reveal().endswith("@localhost:6379/0")
    for shown in (
        repr(cfg),
        str(cfg),
        repr(cfg.redis),
        cfg.model_dump_json(),
        str(cfg.model_dump()),
    ):
        assert PASSWORD not in shown


@pytest.mark.parametrize(
    "url", [f"http://user:{PASSWORD}@localhost", f"user:{PASSWORD}@localhost:6379", PASSWORD]
)
def test_validation_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(redis={"url": url})
    assert "not a Redis URL" in str(caught.value) or "not a URL" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)
