"""Real-browser tests of the HTML report: headless Chromium driven by Selenium.

They skip, saying why, when Chromium, chromedriver or Selenium is missing
locally; ``.ci/run`` installs ``chromium`` and ``chromium-driver`` with apt so
they run in CI. Screenshots land in ``$DMABUFSIM_ARTIFACTS`` (default
``build/html-screenshots`` in the checkout); the run's summary prints the path.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHOTS: list[pathlib.Path] = []


def artifacts_dir() -> pathlib.Path:
    d = pathlib.Path(os.environ.get("DMABUFSIM_ARTIFACTS") or ROOT / "build" / "html-screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _missing() -> str:
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return f"{exe} not found on PATH (install the distribution's chromium and chromium-driver packages)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return ""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    why = _missing()
    if why:
        pytest.skip(f"no real browser: {why}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or ""))
    # No network at all: the page must need none (html R1).
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions",
                           {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    try:
        yield driver
    finally:
        driver.quit()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SHOTS:
        terminalreporter.write_line(f"HTML report screenshots: {SHOTS[0].parent}")
        for p in SHOTS:
            terminalreporter.write_line(f"  {p}")
