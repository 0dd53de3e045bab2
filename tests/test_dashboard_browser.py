"""The dashboard in a real headless browser (Debian's chromium, driven by selenium).

`taskkit dashboard` and the workers run as real processes on the test Redis; the browser
clicks the page's own links and buttons (plain forms, no JavaScript needed). Never
skipped: without chromium the tests fail and say to run .ci/install-browser.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from ops_support import free_port
from rq import Worker
from worker_support import WorkerCli, wait_for

from taskkit.registry import Registry

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless chromium with a fresh profile, through chromium-driver."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("chromium and chromium-driver are needed: run .ci/install-browser (as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=driver, log_output=subprocess.DEVNULL)
    session = webdriver.Chrome(options=options, service=service)
    session.set_page_load_timeout(60)
    yield session
    session.quit()


@pytest.fixture
def dashboard_url(ops_config: Path, worker_cli: WorkerCli) -> str:
    """`taskkit dashboard` on a free loopback port, answering."""
    port = free_port()
    worker_cli.start("dashboard", "-c", str(ops_config), "--port", str(port))
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(answers, timeout=60, what="the dashboard to answer")
    return url


def _text(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "body").text)


def _click(browser: Any, xpath: str) -> None:
    """Click a link or a form's button, and wait until the page it loads replaced this one.

    Read at once, the old page's body could go stale in the middle of reading its text.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    before = browser.find_element(By.TAG_NAME, "body")
    browser.find_element(By.XPATH, xpath).click()
    WebDriverWait(browser, 60).until(expected_conditions.staleness_of(before))


def _until(
    browser: Any, condition: Callable[[str], object], what: str, url: str | None = None
) -> None:
    """Reload ``url`` (if given) until ``condition(page text)`` holds."""

    def check() -> bool:
        if url is not None:
            browser.get(url)
        return bool(condition(_text(browser)))

    wait_for(check, timeout=60, what=what)


def test_follow_a_failed_job_requeue_it_and_see_it_finish(
    ops: Registry,
    browser: Any,
    dashboard_url: str,
    worker_cli: WorkerCli,
    redis_conn: redis.Redis,
) -> None:
    job = ops.enqueue("needs_flag", flag="browser-flag", token="tok-abcdef", user="ann")
    assert worker_cli.run("run-worker", "-c", str(ops.path), "--burst").returncode == 0

    browser.get(dashboard_url)
    assert "RuntimeError: flag browser-flag is not set" in _text(browser)
    _click(browser, f"//a[@href='/jobs/{job.id}']")
    page = _text(browser)
    assert "needs_flag" in page and "failed" in page and "tok-abcdef" not in page
    assert '"token": "***"' in page

    _click(browser, "//button[text()='Requeue']")
    assert "Requeued 1 job" in _text(browser)
    assert ops.queue("default").get_job_ids() == [job.id]

    redis_conn.set("browser-flag", 1)
    assert worker_cli.run("run-worker", "-c", str(ops.path), "--burst").returncode == 0
    _until(
        browser,
        lambda text: "finished" in text and "done for ann" in text,
        "the job page to show the job finished",
        url=f"{dashboard_url}jobs/{job.id}",
    )


def test_pause_a_queue_from_the_page_and_see_a_worker_skip_it(
    ops: Registry,
    browser: Any,
    dashboard_url: str,
    worker_cli: WorkerCli,
    redis_conn: redis.Redis,
) -> None:
    worker = worker_cli.start("run-worker", "-c", str(ops.path), "--maintenance-interval", "3s")
    wait_for(lambda: len(Worker.all(connection=redis_conn)) == 1, timeout=60, what="the worker")

    browser.get(dashboard_url)
    _click(browser, "//tr[.//a[text()='high']]//button[text()='Pause']")
    assert "Paused queue high" in _text(browser)
    wait_for(
        lambda: "paused queues: high" in worker_cli.stderr(worker),
        timeout=60,
        what="the worker to see the pause",
    )
    # Queue high comes first: a worker ignoring the pause would run this before the ping.
    held = ops.enqueue("login", user="u", password="pw")
    ping = ops.enqueue("ping", value="after")
    wait_for(lambda: ping.get_status(refresh=True) == "finished", timeout=60)
    assert ops.queue("high").get_job_ids() == [held.id]
    _until(
        browser,
        lambda text: "high paused 1" in text.replace("\n", " "),
        "the overview to show queue high paused with its job",
        url=dashboard_url,
    )

    _click(browser, "//tr[.//a[text()='high']]//button[text()='Resume']")
    assert "Resumed queue high" in _text(browser)
    wait_for(lambda: held.get_status(refresh=True) == "failed", timeout=60, what="the held job")
    assert worker_cli.stop(worker) == 0
