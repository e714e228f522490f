"""The HTML pages in headless Chromium, from disk, offline: no console error, lanes, finding, scrubber."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from dmabufsim.cli import main
from tests.browser.conftest import SHOTS, artifacts_dir
from tests.html_cases import counterexample, page


def _load(browser: Any, path: pathlib.Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(path.as_uri())
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _console_errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def _step(browser: Any) -> int:
    text = browser.find_element("id", "stepout").text  # "event 12 of 383"
    return int(text.split()[1])


def _cursor(browser: Any) -> float:
    return float(browser.execute_script("return parseFloat(document.getElementById('cursor').style.left)"))


@pytest.mark.parametrize("key,shot", [("B1/abba-mutexes", "abba.png"), ("C4/lock-then-free", "dma-freed-page.png"),
                                      ("B1/abba-mutexes-lockdep", "abba-lockdep.png")])
def test_page_in_chromium(browser: Any, tmp_path: pathlib.Path, key: str, shot: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ex, _, _ = counterexample(key)
    path = tmp_path / "page.html"
    path.write_text(page(key), encoding="utf-8")
    _load(browser, path)
    assert browser.execute_script("return document.documentElement.getAttribute('data-ready')") == "1"
    assert _console_errors(browser) == []
    # Nothing was fetched: one self-contained file.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert browser.execute_script("return document.querySelectorAll('.lane[data-tid]').length") == len(ex.threads) + 1
    assert browser.execute_script("return document.querySelectorAll('.canvas .ev.hit').length") >= 1
    # The page opens on the finding; the arrow keys step the whole picture.
    start = _step(browser)
    hit = browser.execute_script("return JSON.parse(document.getElementById('data').textContent).hit")
    assert start == hit
    x0 = _cursor(browser)
    body = browser.find_element("tag name", "body")
    ActionChains(browser).move_to_element(body).perform()
    body.send_keys(Keys.ARROW_LEFT)
    assert _step(browser) == start - 1 and _cursor(browser) < x0
    body.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert _step(browser) == start + 1 and _cursor(browser) > x0
    body.send_keys(Keys.HOME)
    assert _step(browser) == 0
    info = browser.find_element("id", "info").text
    assert info.startswith("event 0  step ")
    # The virtual-time clock redraws without an error.
    browser.find_element("css selector", "#clock option[value=time]").click()
    body.send_keys(Keys.END)
    assert _step(browser) == len(ex.events or []) - 1
    browser.find_element("id", "tohit").click()
    assert _step(browser) == hit
    browser.find_element("css selector", "#clock option[value=step]").click()
    assert _console_errors(browser) == []
    out = artifacts_dir() / shot
    assert browser.save_screenshot(str(out))
    SHOTS.append(out)


def test_check_index_in_chromium(browser: Any, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "check"
    assert main(["check", "B1", "--jobs", "1", "--no-progress", "--html", str(out)]) == 0
    capsys.readouterr()
    _load(browser, out / "index.html")
    assert _console_errors(browser) == []
    links = browser.find_elements("css selector", "table#index a")
    hrefs = [a.get_attribute("href") for a in links]
    assert len(hrefs) == 2
    for href in hrefs:
        browser.get(href)
        assert browser.execute_script("return document.documentElement.getAttribute('data-ready')") == "1"
        assert _console_errors(browser) == []
