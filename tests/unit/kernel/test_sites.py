"""Lazy acquisition sites: a lock remembers (code, instruction offset) and builds the Frame on demand.

The Frame built later must be exactly what the eager walk (``call_site``)
would have built at the acquisition, even though the frame has moved on by
the time a report reads it.
"""

from __future__ import annotations

import pathlib
import sys

import dmabufsim as ds
from dmabufsim.kernel.held import HeldLock
from dmabufsim.kernel.stack import Frame, call_site, caller_site, site_at


def _here() -> tuple[Frame, int]:
    """The caller's site now (its f_lineno) and its instruction offset."""
    f = sys._getframe(1)
    code, lasti = caller_site(f)
    assert code is f.f_code and lasti == f.f_lasti
    return Frame(f.f_code.co_filename, f.f_lineno, f.f_code.co_name), lasti


def test_site_at_is_the_eager_frame() -> None:
    seen = []
    seen.append(_here())
    seen.append(
        _here()
    )
    x = [
        1,
        _here(),
    ][1]
    assert isinstance(x, tuple)
    seen.append(x)
    code = sys._getframe(0).f_code
    assert len({eager.lineno for eager, _ in seen}) == 3
    for eager, lasti in seen:
        assert site_at(code, lasti) == eager
    line = sys._getframe(0).f_lineno + 1
    assert call_site() == Frame(__file__, line, "test_site_at_is_the_eager_frame")


def test_held_lock_site_resolves_late_to_the_lock_line() -> None:
    got: dict[str, object] = {}

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        n = ds.Mutex("n")
        line = sys._getframe(0).f_lineno + 1
        m.lock()
        with n:
            k.point("work", 0, True)  # the frame moves on before anyone reads the sites
            held = list(k.current.held)
        m.unlock()
        got["line"] = line
        got["sites"] = [h.site for h in held]
        got["lazy"] = [h._lasti >= 0 for h in held]

    ds.Kernel(seed=1).run(scenario)
    line = got["line"]
    assert isinstance(line, int)
    assert got["sites"] == [
        Frame(__file__, line, "scenario"),
        Frame(__file__, line + 1, "scenario"),  # `with n:` walks out of Mutex.__enter__
    ]
    # The entries were read after release: they resolved then (the held list copy kept them).
    assert got["lazy"] == [False, False]


def test_held_lock_site_setter_and_plain_frames() -> None:
    fr = Frame("f.py", 3, "g")
    hl = HeldLock(object(), 0, False, 0, None, fr)
    assert hl.site is fr
    hl.site = None
    assert hl.site is None
    code = sys._getframe(0).f_code
    lazy = HeldLock(object(), 0, False, 0, None, code, 0)
    assert lazy.site == site_at(code, 0)
    assert lazy.site is lazy.site  # resolved once


def test_lockdep_splat_names_lazy_sites() -> None:
    """A circular-locking report shows both acquisition lines of the scenario."""

    def scenario(k: ds.Kernel) -> None:
        a = ds.Mutex("A")
        b = ds.Mutex("B")
        a.lock()
        b.lock()
        b.unlock()
        a.unlock()
        b.lock()
        a.lock()  # closes B -> A -> B
        a.unlock()
        b.unlock()

    ex = ds.Kernel(seed=1).run(scenario)
    [f] = ex.by_kind("circular-locking")
    src = pathlib.Path(__file__).read_text().splitlines()
    b_line = next(i for i, s in enumerate(src, 1) if s == "        a.lock()  # closes B -> A -> B") - 1
    assert f"scenario+{b_line} (test_sites.py:{b_line})" in f.report
    assert f"scenario+{b_line + 1} (test_sites.py:{b_line + 1})" in f.report


def test_spinlock_sections_name_their_lines_lazily() -> None:
    """might_sleep's report names where each atomic section began (spin_lock, irqsave, with)."""

    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("s")
        r = ds.SpinLock("r")
        m = ds.Mutex("m")
        s.lock_irqsave()
        with r:
            assert r.trylock() is False
            m.lock()  # sleeping in atomic context
            m.unlock()
        s.unlock_irqrestore()

    ex = ds.Kernel(seed=1).run(scenario)
    [f] = ex.by_kind("sleep-in-atomic")
    src = pathlib.Path(__file__).read_text().splitlines()
    irqsave = next(i for i, s in enumerate(src, 1) if s == "        s.lock_irqsave()")
    sections = (("irqs_disabled", "s", irqsave), ("spinlock", "s", irqsave), ("spinlock", "r", irqsave + 1))
    for what, name, line in sections:
        assert f"atomic because of {what} ({name}) taken at: scenario+{line} (test_sites.py:{line})" in f.report
    assert [a["site"] for a in f.details["atomic"]] == [
        f"scenario+{irqsave} (test_sites.py:{irqsave})",
        f"scenario+{irqsave} (test_sites.py:{irqsave})",
        f"scenario+{irqsave + 1} (test_sites.py:{irqsave + 1})",
    ]
