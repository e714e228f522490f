"""H16: nouveau's pushbuf copies under reservations against the primed mmap_lock order (2019)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h16_rows() -> None:
    rows = rows_of("H16")
    ex = assert_buggy(rows["H16/copy-under-reservation"], ["circular-locking"],
                      ("mmap_lock", "reservation_ww_class_acquire", "reservation_ww_class_mutex"))
    (f,) = ex.findings
    assert "dma_resv_lockdep" in f.report  # the mmap_lock -> resv order was taught at boot
    assert_proved(rows["H16/slowpath"])
