"""H4: i915 userptr dirtying its pages under try_to_unmap's page lock (2019)."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import h04_userptr_page_lock as h4

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h4_rows() -> None:
    rows = rows_of("H4")
    ex = assert_buggy(rows["H4/lock-page"], ["deadlock", "recursive-locking"])
    rec = next(f for f in ex.findings if f.kind == "recursive-locking")
    assert rec.details["lock"] == "PG_locked" and rec.details["thread"] == "kswapd"
    assert rec.rule.startswith("page_lock R3")
    ex = assert_buggy(rows["H4/no-lock"], ["assertion"])
    (f,) = ex.findings
    assert f.signature == "set_page_dirty-unlocked" and f.details["holder"] == "kswapd"
    assert rows["H4/no-lock"].found is not None and rows["H4/no-lock"].found.asserts == {"set_page_dirty-unlocked"}
    assert_proved(rows["H4/trylock"])


def test_trylock_completes_in_random_schedules_too() -> None:
    for seed in range(12):
        ex = ds.Kernel(seed=seed).run(h4.trylock)
        assert ex.findings == [] and ex.outcome == "completed"
