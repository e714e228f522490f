"""H15: TTM's fault handler reserving under mmap_lock (2013)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h15_rows() -> None:
    rows = rows_of("H15")
    assert rows["H15/blocking-reserve"].row.kernel_options == {"prime_lockdep": False}
    assert_buggy(rows["H15/blocking-reserve"], ["circular-locking"], ("reservation_ww_class_mutex", "mmap_lock"))
    assert_proved(rows["H15/trylock-retry"])
