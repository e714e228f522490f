"""H14: i915's allocation under i915->mm_lock against its shrinker (2020)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h14_rows() -> None:
    rows = rows_of("H14")
    assert_buggy(rows["H14/alloc-under-lock"], ["circular-locking"], ("i915->mm_lock", "fs_reclaim"))
    assert_proved(rows["H14/alloc-before-lock"])
