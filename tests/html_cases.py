"""Recorded counterexamples of catalog rows, for the HTML report's tests (unit and browser)."""

from __future__ import annotations

import functools
from html.parser import HTMLParser
from typing import Any

from dmabufsim.kernel.execution import Execution
from dmabufsim.report import html as html_report
from dmabufsim.scenarios.catalog import discover
from dmabufsim.scenarios.runner import check


@functools.cache
def counterexample(key: str) -> tuple[Execution, dict[int, int], str]:
    """``(recorded execution, page names, replay token)`` of the first counterexample of catalog row ``key``."""
    rows = discover().select([key])
    assert len(rows) == 1, rows
    result = check(rows, jobs=1)
    r = result.rows[0]
    assert r.status == "match" and r.token, (r.status, r.why)
    assert rows[0].scenario is not None
    ex, k = html_report.replay_recorded(r.token, rows[0].scenario, rows[0].kernel_options)
    return ex, html_report.page_names(k), r.token


def page(key: str, **kw: Any) -> str:
    ex, pages, token = counterexample(key)
    return html_report.render(ex, title=key, replay=f"dmabufsim replay {token} {key}", pages=pages, **kw)


class Dom(HTMLParser):
    """The elements of a page as ``(tag, attrs, parent index)``, plus each element's text."""

    VOID = frozenset({"meta", "input", "br", "img", "link", "path", "line"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elems: list[tuple[str, dict[str, str], int]] = []
        self.text: dict[int, str] = {}
        self._stack: list[int] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self._stack[-1] if self._stack else -1
        self.elems.append((tag, {k: v or "" for k, v in attrs}, parent))
        if tag not in self.VOID:
            self._stack.append(len(self.elems) - 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self._stack[-1] if self._stack else -1
        self.elems.append((tag, {k: v or "" for k, v in attrs}, parent))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            i = self._stack.pop()
            if self.elems[i][0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._stack:
            i = self._stack[-1]
            self.text[i] = self.text.get(i, "") + data

    def find(self, cls: str = "", **attrs: str) -> list[int]:
        """Indices of the elements with class ``cls`` (a word of it) and the given attributes."""
        out = []
        for i, (_, a, _) in enumerate(self.elems):
            if cls and cls not in a.get("class", "").split():
                continue
            if all(a.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(i)
        return out

    def children(self, parent: int, cls: str = "") -> list[int]:
        return [i for i in self.find(cls) if self.elems[i][2] == parent]

    def attr(self, i: int, name: str) -> str:
        return self.elems[i][1].get(name, "")
