"""H7: range_end paired with range_start when a non-blockable start is refused (2021)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h7_rows() -> None:
    rows = rows_of("H7")
    ex = assert_buggy(rows["H7/unpaired"], ["deadlock"])
    (f,) = ex.findings
    assert "vcpu" in f.report and "kvm.invalidate_wq" in f.report
    assert_proved(rows["H7/paired"])
