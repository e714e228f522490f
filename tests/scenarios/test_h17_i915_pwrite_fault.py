"""H17: i915's pwrite faulting on a GTT mmap under struct_mutex (2010)."""

from __future__ import annotations

from .mm_history import assert_buggy, assert_proved, rows_of


def test_h17_rows() -> None:
    rows = rows_of("H17")
    ex = assert_buggy(rows["H17/lock-then-copy"], ["deadlock", "recursive-locking"])
    rec = next(f for f in ex.findings if f.kind == "recursive-locking")
    assert rec.details["chain"] == ["struct_mutex", "struct_mutex"]
    # As in Linus's report: struct_mutex, then mmap_lock from the fault, then struct_mutex again.
    assert "#0: (struct_mutex)" in rec.report and "#1: (mmap_lock)" in rec.report
    assert_proved(rows["H17/prefault-then-lock"])
