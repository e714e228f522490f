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


def _tip(browser: Any) -> tuple[bool, str]:
    return (bool(browser.execute_script("return getComputedStyle(document.getElementById('tip')).display!=='none'")),
            browser.find_element("id", "tip").get_attribute("textContent") or "")


def test_hover_and_keyboard_show_the_events_call_trace(browser: Any, tmp_path: pathlib.Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ex, _, _ = counterexample("B1/abba-mutexes")
    events = ex.events or []
    path = tmp_path / "page.html"
    path.write_text(page("B1/abba-mutexes"), encoding="utf-8")
    _load(browser, path)
    assert _tip(browser)[0] is False
    # Hover: t1's first mutex_lock shows its kernel-style stack (the scenario's worker function).
    i = next(n for n, e in enumerate(events) if e.op == "mutex_lock" and e.tid == 1)
    el = browser.find_element("css selector", f'.lane[data-tid="1"] .ev[data-i="{i}"]')
    browser.execute_script("arguments[0].scrollIntoView({inline:'center'})", el)
    ActionChains(browser).move_to_element(el).perform()
    shown, text = _tip(browser)
    assert shown
    assert text.startswith(f"event {i}  step ") and "mutex_lock" in text
    assert "\nCall Trace:\n  _take_in_order+" in text
    assert browser.find_element("id", "info").text == text.strip()
    # Keyboard: stepping with the arrow keys shows the stack of the event stepped to.
    body = browser.find_element("tag name", "body")
    ActionChains(browser).move_to_element(body).perform()
    body.send_keys(Keys.HOME, Keys.ARROW_RIGHT)
    shown, text = _tip(browser)
    assert shown and text.startswith("event 1  step ") and "Call Trace:" in text
    body.send_keys(Keys.ESCAPE)
    assert _tip(browser)[0] is False
    # Focus: the finding's events are tab stops; focusing one shows its stack.
    hit = browser.find_element("css selector", ".lane[data-tid] .ev.hit")
    browser.execute_script("arguments[0].focus()", hit)
    shown, text = _tip(browser)
    assert shown and "\nCall Trace:\n  _take_in_order+" in text
    assert _console_errors(browser) == []


def test_every_dma_access_lands_on_the_page_row_it_reached(browser: Any, tmp_path: pathlib.Path) -> None:
    ex, _, _ = counterexample("C4/lock-then-free")
    events = ex.events or []
    (f,) = ex.by_kind("dma-freed-page")
    path = tmp_path / "page.html"
    path.write_text(page("C4/lock-then-free"), encoding="utf-8")
    _load(browser, path)
    row = f'.lane.mem[data-page="{f.details["pfn"]}"]'
    got = browser.execute_script(
        f"return Array.from(document.querySelectorAll('{row} .ev')).map(e=>[+e.dataset.i,e.className])")
    ops = [(events[i].op, "hit" in cls.split()) for i, cls in got]
    assert ops == [("free_page", False), ("put_page", False), ("dma", True), ("dma", False), ("dma", False),
                   ("free_page", False), ("put_page", False)]
    xs = browser.execute_script(
        f"return Array.from(document.querySelectorAll('{row} .ev')).map(e=>e.getBoundingClientRect().left)")
    assert xs == sorted(xs) and xs[0] < xs[2]  # freed, then written: left to right on one row
    assert _console_errors(browser) == []


def test_preemptions_blocks_and_interrupt_arrivals_are_marked(browser: Any, tmp_path: pathlib.Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ex, _, _ = counterexample("C4/lock-then-free")
    path = tmp_path / "page.html"
    path.write_text(page("C4/lock-then-free"), encoding="utf-8")
    _load(browser, path)

    def before(sel: str) -> list[str]:
        return browser.execute_script(  # type: ignore[no-any-return]
            f"return Array.from(document.querySelectorAll('{sel}')).map(e=>getComputedStyle(e,'::before').content)")

    pre, blk = before(".lane[data-tid] .ev.pre"), before(".lane[data-tid] .ev.blk")
    assert pre and set(pre) == {'"P"'}
    assert blk and set(blk) == {'"Z"'}
    # Not colour alone: the two glyphs differ in letter and in fill.
    fills = browser.execute_script(
        "return ['.ev.pre','.ev.blk'].map(s=>getComputedStyle(document.querySelector('.lane[data-tid] '+s),"
        "'::before').backgroundColor)")
    assert fills[0] != fills[1]
    # Hovering a blocked thread's last event says what it sleeps on.
    el = browser.find_element("css selector", ".lane[data-tid] .ev.blk")
    browser.execute_script("arguments[0].scrollIntoView({inline:'center'})", el)
    ActionChains(browser).move_to_element(el).perform()
    assert "\nthen blocks (sleeps): " in _tip(browser)[1]
    # Each interrupt handler's lane is labelled and its arrival marked on it.
    irqs = [t for t in ex.threads if t.context == "hardirq"]
    assert len(irqs) == 3
    for t in irqs:
        assert browser.find_elements("css selector", f'.lane[data-tid="{t.tid}"] .mark.irq')
    labels = [e.text for e in browser.find_elements("css selector", ".names .lname") if "(hardirq)" in e.text]
    assert len(labels) == 3
    assert _console_errors(browser) == []
