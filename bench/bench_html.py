"""The HTML report of a 10,000-event execution: file size, Python render time, Chromium load time.

A synthetic scenario (four threads taking three mutexes in turn and
signalling a completion, then an ABBA deadlock at the end) gives a recorded
execution of about 10,000 events. Measured in the same run:

* baseline: the execution's replay with ``record_trace=True``;
* render: ``report.html.render`` of it (ratio to the baseline);
* the page's size (the documented bound: 2 MB for 10,000 events);
* Chromium: the time from navigation to the load event of the page from
  disk, in headless Chromium (Selenium), against a tiny page (the
  baseline of the browser). The target is under 2 s. Skipped, saying so,
  when Chromium, chromedriver or Selenium is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim.report import html

ITERS = 840
REPEATS = 3


def _worker(k: ds.Kernel, locks: list[ds.Mutex], done: ds.Completion, n: int, first: int) -> None:
    for i in range(n):
        m = locks[(first + i) % len(locks)]
        with m:
            k.msleep(0)
    done.complete()


def _abba(a: ds.Mutex, b: ds.Mutex) -> None:
    with a, b:
        pass


def scenario(k: ds.Kernel) -> None:
    locks = [ds.Mutex(f"lock_{c}") for c in "ABC"]
    done = ds.Completion("done")
    for t in range(4):
        k.spawn(_worker, k, locks, done, ITERS, t, name=f"worker{t}")
    for _ in range(4):
        done.wait_for_completion()
    k.spawn(_abba, locks[0], locks[1], name="t1")
    k.spawn(_abba, locks[1], locks[0], name="t2")


def _best(fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def _browser_ms(paths: list[str]) -> list[float] | str:
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return f"{exe} not found"
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return "selenium not installed"
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        opts.add_argument(arg)
    d = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or ""))
    try:
        out = []
        for p in paths:
            best = float("inf")
            for _ in range(REPEATS):
                d.get("file://" + p)
                nav = d.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")
                best = min(best, float(nav))
            out.append(best)
        return out
    finally:
        d.quit()


def main() -> None:
    ex = ds.Kernel(seed=1, record_trace=True).run(scenario)
    token = ex.token
    n = len(ex.events or [])
    base = _best(lambda: ds.Kernel(replay=token, record_trace=True).run(scenario))
    ren = _best(lambda: html.render(ex, title="bench"))
    text = html.render(ex, title="bench")
    size = len(text.encode())
    print(f"execution: {n} events, {len(ex.threads)} threads, findings {ex.kinds}")
    print(f"  replay, recorded (baseline) {base:8.1f} ms   1.00x")
    print(f"  html.render                 {ren:8.1f} ms {ren / base:6.2f}x")
    print(f"  page size                   {size / 1e6:8.2f} MB (bound 2 MB)")
    with tempfile.TemporaryDirectory() as d:
        big, small = os.path.join(d, "big.html"), os.path.join(d, "small.html")
        with open(big, "w", encoding="utf-8") as fh:
            fh.write(text)
        tiny = ds.Kernel(seed=1, record_trace=True).run(lambda k: k.spawn(_abba, ds.Mutex("a"), ds.Mutex("b")))
        html.write(tiny, small, title="tiny")
        ms = _browser_ms([small, big])
        if isinstance(ms, str):
            print(f"  chromium: skipped ({ms})")
        else:
            print(f"  chromium load, tiny page    {ms[0]:8.1f} ms   1.00x")
            print(f"  chromium load, this page    {ms[1]:8.1f} ms {ms[1] / max(ms[0], 1e-3):6.2f}x (target < 2000 ms)")


if __name__ == "__main__":
    main()
