"""H12: amdgpu's get_user_pages under the reservation (2016)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h12_rows() -> None:
    rows = rows_of("H12")
    assert_buggy(rows["H12/gup-under-reservation"], ["circular-locking", "deadlock"],
                 ("reservation_ww_class_mutex", "mmap_lock", "mmu_notifier_invalidate_range_start"))
    assert_proved(rows["H12/gup-before-reservation"])
